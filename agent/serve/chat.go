package serve

import (
	"net/http"
	"time"

	"github.com/fireact/fireact/llama"
)

// chatRoles are the roles a chat template may be given.
var chatRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// chatPrompt renders the messages with the backend's chat template.
func (s *Server) chatPrompt(b Backend, msgs []ChatMessage) ([]llama.Token, *APIError) {
	if b.ChatTemplate == "" {
		return nil, apiErrorf(http.StatusBadRequest, ErrTypeInvalidRequest, "no_chat_template",
			"the model %q has no chat template; start fireact serve with --chat-template (e.g. chatml) or use /v1/completions", b.Model)
	}
	if len(msgs) == 0 {
		return nil, badRequest("messages must not be empty")
	}
	cm := make([]llama.ChatMessage, len(msgs))
	for i, m := range msgs {
		if !chatRoles[m.Role] {
			return nil, badRequest("messages[%d]: unknown role %q", i, m.Role)
		}
		role := m.Role
		if role == "developer" {
			role = "system" // OpenAI's newer name; model templates know "system"
		}
		cm[i] = llama.ChatMessage{Role: role, Content: string(m.Content)}
	}
	if s.chatErr != nil {
		return nil, apiErrorf(http.StatusInternalServerError, ErrTypeServer, "chat_template_failed", "the model's chat template: %v", s.chatErr)
	}
	// All backends share the server's template (b.ChatTemplate is its text).
	text, err := s.chat.Render(cm, true)
	if err != nil {
		// Mostly the template refusing the messages (raise_exception: Gemma's
		// and Mistral's want alternating user and assistant turns): the
		// client's to fix, as vLLM and llama-server answer it.
		return nil, apiErrorf(http.StatusBadRequest, ErrTypeInvalidRequest, "chat_template_failed", "the chat template does not render these messages: %v", err)
	}
	// The template's own markers (e.g. <|im_start|>) must become special tokens.
	return s.tokenizePrompt(text, true)
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req ChatCompletionRequest
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	b, p, e := s.resolve(req.Model, req.Sampling, req.MaxCompletionTokens)
	if e != nil {
		writeError(w, e)
		return
	}
	toks, e := s.chatPrompt(b, req.Messages)
	if e != nil {
		writeError(w, e)
		return
	}
	cs := choices([][]llama.Token{toks}, p)
	id, created := newID("chatcmpl-"), time.Now().Unix()
	ctx := r.Context()

	if !req.Stream {
		results, err := s.generate(ctx, b, cs, p, nil)
		if err != nil {
			if e := s.generationError(ctx, err); e != nil {
				writeError(w, e)
			}
			return
		}
		resp := ChatCompletionResponse{ID: id, Object: "chat.completion", Created: created, Model: b.Model,
			Usage: usageOf(cs, results)}
		for i, res := range results {
			resp.Choices = append(resp.Choices, ChatChoice{Index: cs[i].index,
				Message: ChatMessage{Role: "assistant", Content: MessageContent(res.Text)}, FinishReason: string(res.FinishReason)})
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}

	stream := s.newSSE(w)
	chunk := func(index int, d ChatDelta, finish *string) ChatCompletionChunk {
		return ChatCompletionChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: b.Model,
			Choices: []ChatChunkChoice{{Index: index, Delta: d, FinishReason: finish}}}
	}
	// OpenAI opens every choice with a chunk carrying only the role.
	for _, c := range cs {
		if err := stream.send(chunk(c.index, ChatDelta{Role: "assistant"}, nil)); err != nil {
			return
		}
	}
	results, err := s.generate(ctx, b, cs, p, func(index int, text string) error {
		return stream.send(chunk(index, ChatDelta{Content: text}, nil))
	})
	if err != nil {
		stream.fail(s.generationError(ctx, err))
		return
	}
	for i, res := range results {
		stream.send(chunk(cs[i].index, ChatDelta{}, new(string(res.FinishReason))))
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := usageOf(cs, results)
		stream.send(ChatCompletionChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: b.Model,
			Choices: []ChatChunkChoice{}, Usage: &u})
	}
	stream.done()
}
