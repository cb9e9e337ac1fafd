package serve

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/fireact/fireact/chattmpl/chattmpltest"
	"github.com/fireact/fireact/llama"
)

// chatReference is one of chattmpl's reference renderings (jinja2, set up as
// transformers' apply_chat_template sets it up) with its template, with the
// generation prompt.
func chatReference(t *testing.T, template, conversation string) (src string, msgs []llama.ChatMessage, text string) {
	t.Helper()
	return chattmpltest.Load[llama.ChatMessage](t).Find(t, template, conversation, true)
}

// templateServer serves the tiny model carrying src as its own chat template.
func templateServer(t *testing.T, src string) (*llama.Engine, *openai.Client) {
	t.Helper()
	m, _ := newTinyModel(t, t.TempDir(), src)
	e, err := llama.NewEngine(m, llama.EngineOptions{Context: llama.ContextOptions{NCtx: 2048, NSeqMax: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	s, err := New(Config{Engine: e, BaseName: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	cfg := openai.DefaultConfig("")
	cfg.BaseURL = hs.URL + "/v1"
	return e, openai.NewClientWithConfig(cfg)
}

// TestChatModelTemplateAsHF checks that /v1/chat/completions prompts with the
// text Hugging Face renders from the model's own Jinja template (Qwen3's,
// which drops earlier turns' reasoning where llama.cpp's chatml heuristic
// keeps it), and that a template refusing the messages (Gemma-3's, on roles
// that do not alternate) is the client's error.
func TestChatModelTemplateAsHF(t *testing.T) {
	ctx := context.Background()
	t.Run("qwen3", func(t *testing.T) {
		src, msgs, want := chatReference(t, "qwen3", "think")
		e, c := templateServer(t, src)
		if heuristic, err := e.Model().ApplyChatTemplate("", msgs, true); err != nil || heuristic == want {
			t.Fatalf("llama.cpp's heuristic rendering (%v) is HF's; the test would not tell them apart", err)
		}
		ref, err := e.Generate(ctx, llama.Request{Prompt: want, ParseSpecial: true, MaxTokens: 6})
		if err != nil {
			t.Fatal(err)
		}
		var req openai.ChatCompletionRequest
		for _, m := range msgs {
			req.Messages = append(req.Messages, openai.ChatCompletionMessage{Role: m.Role, Content: m.Content})
		}
		req.Model, req.MaxTokens = "tiny", 6
		resp, err := c.CreateChatCompletion(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Usage.PromptTokens != ref.PromptTokens || len(resp.Choices) != 1 || resp.Choices[0].Message.Content != ref.Text {
			t.Fatalf("usage %+v choices %+v; HF's rendering: %d prompt tokens, text %q", resp.Usage, resp.Choices, ref.PromptTokens, ref.Text)
		}
	})
	t.Run("uncompilable", func(t *testing.T) {
		// The server still starts and completes; chat says why it cannot.
		_, c := templateServer(t, "{% for m in messages %}{{ m.content }}")
		if _, err := c.CreateCompletion(ctx, openai.CompletionRequest{Model: "tiny", Prompt: "Once upon a time", MaxTokens: 2}); err != nil {
			t.Fatal(err)
		}
		_, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "tiny", MaxTokens: 2,
			Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
		if status, code := apiError(t, err); status != 500 || code != "chat_template_failed" || !strings.Contains(err.Error(), "compile") {
			t.Fatalf("status %d code %q: %v", status, code, err)
		}
	})
	t.Run("gemma-3 refuses", func(t *testing.T) {
		src, _, _ := chatReference(t, "gemma-3", "react")
		_, c := templateServer(t, src)
		_, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "tiny", MaxTokens: 4, Messages: []openai.ChatCompletionMessage{
			{Role: "user", Content: "one"}, {Role: "user", Content: "two"}}})
		if status, code := apiError(t, err); status != 400 || code != "chat_template_failed" {
			t.Fatalf("status %d code %q: %v", status, code, err)
		}
	})
}
