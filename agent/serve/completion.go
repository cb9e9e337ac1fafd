package serve

import (
	"net/http"
	"time"

	"github.com/fireact/fireact/llama"
)

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req CompletionRequest
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	b, p, e := s.resolve(req.Model, req.Sampling, nil)
	if e != nil {
		writeError(w, e)
		return
	}
	if len(req.Prompt) == 0 {
		writeError(w, badRequest("prompt is required"))
		return
	}
	if len(req.Prompt)*p.n > maxChoices {
		writeError(w, badRequest("at most %d generations per request (prompts × n), got %d", maxChoices, len(req.Prompt)*p.n))
		return
	}
	prompts := make([][]llama.Token, len(req.Prompt))
	for i, text := range req.Prompt {
		// Completion prompts are raw text: special-token text in them stays text.
		if prompts[i], e = s.tokenizePrompt(text, false); e != nil {
			writeError(w, e)
			return
		}
	}
	cs := choices(prompts, p)
	id, created := newID("cmpl-"), time.Now().Unix()
	ctx := r.Context()

	if !req.Stream {
		results, err := s.generate(ctx, b, cs, p, nil)
		if err != nil {
			if e := s.generationError(ctx, err); e != nil {
				writeError(w, e)
			}
			return
		}
		resp := CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: b.Model}
		for i, res := range results {
			resp.Choices = append(resp.Choices, CompletionChoice{Text: res.Text, Index: cs[i].index, FinishReason: new(string(res.FinishReason))})
		}
		u := usageOf(cs, results)
		resp.Usage = &u
		writeJSON(w, http.StatusOK, resp)
		return
	}

	stream := s.newSSE(w)
	chunk := func(index int, text string, finish *string) CompletionResponse {
		return CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: b.Model,
			Choices: []CompletionChoice{{Text: text, Index: index, FinishReason: finish}}}
	}
	results, err := s.generate(ctx, b, cs, p, func(index int, text string) error {
		return stream.send(chunk(index, text, nil))
	})
	if err != nil {
		stream.fail(s.generationError(ctx, err))
		return
	}
	for i, res := range results {
		stream.send(chunk(cs[i].index, "", new(string(res.FinishReason))))
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := usageOf(cs, results)
		stream.send(CompletionResponse{ID: id, Object: "text_completion", Created: created, Model: b.Model,
			Choices: []CompletionChoice{}, Usage: &u})
	}
	stream.done()
}
