package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/fireact/fireact/llama"
)

// Request limits that are not worth a flag.
const (
	maxChoices = 16 // n times the number of prompts
	maxStops   = 16
)

// genParams are the validated generation settings of one request.
type genParams struct {
	maxTokens int
	sampling  llama.SamplingOptions
	stop      []string
	n         int
	ignoreEOS bool
}

// params validates the sampling fields; maxTokens overrides sp.MaxTokens when set.
// resolve finds a request's backend and generation parameters, the first step of
// both generation endpoints.
func (s *Server) resolve(model string, sp Sampling, maxTokens *int) (Backend, genParams, *APIError) {
	b, e := s.backend(model)
	if e != nil {
		return Backend{}, genParams{}, e
	}
	p, e := s.params(sp, maxTokens)
	return b, p, e
}

func (s *Server) params(sp Sampling, maxTokens *int) (genParams, *APIError) {
	p := genParams{maxTokens: s.cfg.MaxTokens, n: 1}
	if maxTokens == nil {
		maxTokens = sp.MaxTokens
	}
	if maxTokens != nil {
		switch mt := *maxTokens; {
		case mt < 0:
			return p, badRequest("max_tokens must not be negative, got %d", mt)
		case mt > s.cfg.MaxTokens:
			return p, apiErrorf(http.StatusBadRequest, ErrTypeInvalidRequest, "max_tokens_too_large",
				"max_tokens %d is larger than the server's limit of %d", mt, s.cfg.MaxTokens)
		case mt > 0:
			p.maxTokens = mt
		}
	}
	temp := s.cfg.Temperature
	if sp.Temperature != nil {
		temp = *sp.Temperature
	}
	if temp < 0 || temp > 2 {
		return p, badRequest("temperature must be between 0 and 2, got %g", temp)
	}
	p.sampling.Temperature = temp
	if sp.TopP != nil {
		if *sp.TopP <= 0 || *sp.TopP > 1 {
			return p, badRequest("top_p must be in (0, 1], got %g", *sp.TopP)
		}
		p.sampling.TopP = *sp.TopP
	}
	if sp.N != nil {
		if *sp.N < 1 || *sp.N > maxChoices {
			return p, badRequest("n must be between 1 and %d, got %d", maxChoices, *sp.N)
		}
		p.n = *sp.N
	}
	if sp.Seed != nil {
		p.sampling.Seed = uint32(*sp.Seed)
	} else {
		// No seed: a fresh draw per request, as OpenAI does.
		p.sampling.Seed = rand.Uint32()
	}
	p.ignoreEOS = sp.IgnoreEOS
	p.sampling.FrequencyPenalty = sp.FrequencyPenalty
	p.sampling.PresencePenalty = sp.PresencePenalty
	if len(sp.Stop) > maxStops {
		return p, badRequest("at most %d stop strings, got %d", maxStops, len(sp.Stop))
	}
	for _, st := range sp.Stop {
		if st != "" { // an empty stop string would end every generation at once
			p.stop = append(p.stop, st)
		}
	}
	return p, nil
}

// tokenizePrompt tokenizes a prompt and checks that it fits the context.
func (s *Server) tokenizePrompt(text string, parseSpecial bool) ([]llama.Token, *APIError) {
	m := s.cfg.Engine.Model()
	toks, err := m.Tokenize(text, llama.TokenizeOptions{AddSpecial: true, ParseSpecial: parseSpecial})
	if err != nil {
		return nil, badRequest("cannot tokenize the prompt: %v", err)
	}
	// A chat template that writes the BOS text itself would otherwise give two.
	if bos := m.Info().BOS; len(toks) > 1 && toks[0] == bos && toks[1] == bos {
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return nil, badRequest("the prompt is empty")
	}
	if nctx := s.cfg.Engine.SeqContext(); len(toks) >= nctx {
		return nil, apiErrorf(http.StatusBadRequest, ErrTypeInvalidRequest, "context_length_exceeded",
			"the prompt has %d tokens; the server's context holds %d", len(toks), nctx)
	}
	return toks, nil
}

// choice is one generation of a request: a prompt and a sampling seed.
type choice struct {
	index  int
	tokens []llama.Token
	seed   uint32
	first  bool // the first choice of its prompt, which counts its prompt tokens
}

// choices expands prompts × n into generations with consecutive seeds, so n
// sampled choices differ while the request stays reproducible.
func choices(prompts [][]llama.Token, p genParams) []choice {
	var out []choice
	for i, toks := range prompts {
		for j := range p.n {
			out = append(out, choice{index: i*p.n + j, tokens: toks, seed: p.sampling.Seed + uint32(j), first: j == 0})
		}
	}
	return out
}

// generate runs the choices concurrently (the engine batches them) and
// returns their results by index. onText, if set, streams each choice's text;
// it must be safe for concurrent use. The first error cancels the others.
func (s *Server) generate(ctx context.Context, b Backend, cs []choice, p genParams, onText func(index int, text string) error) ([]*llama.Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]*llama.Result, len(cs))
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for i, c := range cs {
		wg.Go(func() {
			sp := p.sampling
			sp.Seed = c.seed
			req := llama.Request{Tokens: c.tokens, MaxTokens: p.maxTokens, Sampling: sp, Stop: p.stop, IgnoreEOS: p.ignoreEOS}
			if onText != nil {
				req.OnText = func(text string) error { return onText(c.index, text) }
			}
			res, err := b.Generate(ctx, req)
			if err != nil {
				once.Do(func() { firstErr = err; cancel() })
				return
			}
			results[i] = res
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	u := usageOf(cs, results)
	s.met.addTokens(u.PromptTokens, u.CompletionTokens)
	return results, nil
}

// promptTokens counts each prompt once, as OpenAI does for n > 1.
func promptTokens(cs []choice) int {
	n := 0
	for _, c := range cs {
		if c.first {
			n += len(c.tokens)
		}
	}
	return n
}

// usageOf counts the tokens of a finished request.
func usageOf(cs []choice, rs []*llama.Result) Usage {
	u := Usage{PromptTokens: promptTokens(cs), PromptTokensDetails: &PromptTokensDetails{}}
	for i, r := range rs {
		u.CompletionTokens += len(r.Tokens)
		if cs[i].first {
			u.PromptTokensDetails.CachedTokens += r.CachedTokens
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// generationError turns an engine error into the response to send, or nil
// when the client is gone and nothing should be sent.
func (s *Server) generationError(ctx context.Context, err error) *APIError {
	if e, ok := s.contextError(ctx); ok {
		return e
	}
	return apiErrorf(http.StatusInternalServerError, ErrTypeServer, "generation_failed", "generation failed: %v", err)
}

// sse writes server-sent events. Its methods are safe for concurrent use, so
// the choices of one request can stream from their own goroutines.
type sse struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	stall   time.Duration // longest wait for one chunk's write (0: none)
	started bool
	err     error
}

func (s *Server) newSSE(w http.ResponseWriter) *sse {
	return &sse{w: w, rc: http.NewResponseController(w), stall: s.cfg.WriteStall}
}

// send writes one "data: JSON" event and flushes it to the client.
func (e *sse) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("serve: encode event: %w", err)
	}
	return e.raw(b)
}

func (e *sse) raw(data []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err
	}
	if !e.started {
		h := e.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // keep reverse proxies from holding chunks back
		e.w.WriteHeader(http.StatusOK)
		e.started = true
	}
	if e.stall > 0 {
		// A client that stops reading fills the socket buffers and would block
		// this write, and with it the slot, forever; the deadline turns that
		// into a write error, which ends the generation.
		_ = e.rc.SetWriteDeadline(time.Now().Add(e.stall))
	}
	buf := make([]byte, 0, len(data)+8)
	buf = append(append(append(buf, "data: "...), data...), "\n\n"...)
	if _, err := e.w.Write(buf); err != nil {
		e.err = fmt.Errorf("serve: stream: %w", err)
		return e.err
	}
	if err := e.rc.Flush(); err != nil {
		e.err = fmt.Errorf("serve: stream flush: %w", err)
	}
	return e.err
}

// done ends the stream the way OpenAI does.
func (e *sse) done() { e.raw([]byte("[DONE]")) }

// fail reports an error: as a JSON error response if nothing was streamed yet,
// otherwise as an error event, which OpenAI clients turn into an error.
func (e *sse) fail(apiErr *APIError) {
	if apiErr == nil {
		return
	}
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		writeError(e.w, apiErr)
		return
	}
	e.send(errorBody{Error: apiErr})
}
