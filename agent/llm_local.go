package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/fireact/fireact/chattmpl/llamachat"
	"github.com/fireact/fireact/llama"
)

// ErrOutOfContext is wrapped by an LLM's error when an episode no longer fits
// the model's context: its prompt is too long, or a turn ran into the end of
// the cells. The episode is recorded as an error that counts as wrong
// (store.OutOfContext).
var ErrOutOfContext = errors.New("out of context")

// LocalLLM serves requests from a llama engine: every question in flight is a
// concurrent Generate call, so the engine decodes them in one batch and shares
// the prompt prefix (the few-shot prompt, the episode's earlier turns) in its
// KV cache.
type LocalLLM struct {
	Engine *llama.Engine
	// Adapters are applied to every request (a fine-tuned student's LoRA).
	Adapters []llama.AdapterScale
	// ChatTemplate renders chat requests (a Jinja template text or a llama.cpp
	// built-in name); "" uses the model's own template, rendered as Hugging
	// Face renders it (llamachat.New).
	ChatTemplate string

	// The renderer is made at the first chat request, once: its template
	// does not change, and compiling it per request would be waste.
	chatOnce sync.Once
	chat     *llamachat.Renderer
	chatErr  error
}

// Complete implements LLM.
func (l *LocalLLM) Complete(ctx context.Context, req Request) (Response, error) {
	prompt := req.Prompt
	if req.Messages != nil {
		msgs := make([]llama.ChatMessage, len(req.Messages))
		for i, m := range req.Messages {
			msgs[i] = llama.ChatMessage{Role: m.Role, Content: m.Content}
		}
		l.chatOnce.Do(func() { l.chat, l.chatErr = llamachat.New(l.Engine.Model(), l.ChatTemplate) })
		if l.chatErr != nil {
			return Response{}, fmt.Errorf("local llm: chat template: %w", l.chatErr)
		}
		p, err := l.chat.Render(msgs, true)
		if err != nil {
			return Response{}, fmt.Errorf("local llm: chat template: %w", err)
		}
		prompt = p
	}
	start := time.Now()
	r, err := l.Engine.Generate(ctx, llama.Request{
		Prompt:       prompt,
		ParseSpecial: req.Messages != nil, // the template's own control tokens
		MaxTokens:    req.MaxTokens,
		Stop:         req.Stop,
		Adapters:     l.Adapters,
		OnText:       req.OnText,
		Sampling: llama.SamplingOptions{
			Temperature: float32(req.Temperature),
			TopP:        float32(req.TopP),
			Seed:        uint32(req.Seed),
			Grammar:     req.Grammar,
		},
	})
	if errors.Is(err, llama.ErrPromptTooLong) {
		return Response{}, fmt.Errorf("local llm: %w: %w", ErrOutOfContext, err)
	}
	if err != nil {
		return Response{}, fmt.Errorf("local llm: %w", err)
	}
	if r.OutOfContext {
		// A turn cut off by the end of the cells would be parsed as if the model
		// had stopped there; the episode cannot go on either way.
		return Response{}, fmt.Errorf("local llm: %w: the turn used up the request's %d KV cells after %d generated tokens (prompt %d)",
			ErrOutOfContext, l.Engine.SeqContext(), len(r.Tokens), r.PromptTokens)
	}
	return Response{
		Text:            r.Text,
		PromptTokens:    r.PromptTokens,
		CachedTokens:    r.CachedTokens,
		GeneratedTokens: len(r.Tokens),
		FinishReason:    string(r.FinishReason),
		Latency:         time.Since(start),
	}, nil
}
