package agent

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/chattmpl/chattmpltest"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
)

// chatReference is one of chattmpl's reference renderings (jinja2, set up as
// transformers' apply_chat_template sets it up) with its template.
func chatReference(t *testing.T, template, conversation string, addGenerationPrompt bool) (src string, msgs []Message, text string) {
	t.Helper()
	return chattmpltest.Load[Message](t).Find(t, template, conversation, addGenerationPrompt)
}

// TestLocalLLMRendersModelTemplateAsHF checks that a chat request to the local
// backend is prompted with the text Hugging Face renders from the model's own
// template: Qwen3's, which drops the reasoning of earlier assistant turns
// where llama.cpp's heuristic (chatml) would keep it.
func TestLocalLLMRendersModelTemplateAsHF(t *testing.T) {
	src, msgs, want := chatReference(t, "qwen3", "think", true)
	path := filepath.Join(t.TempDir(), "qwen3-template.gguf")
	if err := modelgen.WriteLlama(path, modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 2048, Seed: 1, ChatTemplate: src}); err != nil {
		t.Fatal(err)
	}
	e := newEngineFor(t, path, 1, true)
	lm := make([]llama.ChatMessage, len(msgs))
	for i, m := range msgs {
		lm[i] = llama.ChatMessage{Role: m.Role, Content: m.Content}
	}
	if heuristic, err := e.Model().ApplyChatTemplate("", lm, true); err != nil || heuristic == want {
		t.Fatalf("llama.cpp's heuristic rendering (%v) is HF's; the test would not tell them apart", err)
	}
	ctx := context.Background()
	ref, err := e.Generate(ctx, llama.Request{Prompt: want, ParseSpecial: true, MaxTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	l := &LocalLLM{Engine: e}
	for range 2 { // the second request reuses the compiled template
		got, err := l.Complete(ctx, Request{Messages: msgs, MaxTokens: 6})
		if err != nil {
			t.Fatal(err)
		}
		if got.PromptTokens != ref.PromptTokens || got.Text != ref.Text {
			t.Fatalf("chat request: %d prompt tokens, text %q; HF's rendering: %d, %q", got.PromptTokens, got.Text, ref.PromptTokens, ref.Text)
		}
	}

	// A built-in name still overrides the model's template, through llama.cpp.
	chatml, err := e.Model().ApplyChatTemplate("chatml", lm, true)
	if err != nil {
		t.Fatal(err)
	}
	ref, err = e.Generate(ctx, llama.Request{Prompt: chatml, ParseSpecial: true, MaxTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	got, err := (&LocalLLM{Engine: e, ChatTemplate: "chatml"}).Complete(ctx, Request{Messages: msgs, MaxTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	if got.PromptTokens != ref.PromptTokens || ref.PromptTokens == 0 {
		t.Fatalf("chatml override: %d prompt tokens, llama.cpp's chatml %d", got.PromptTokens, ref.PromptTokens)
	}

	if _, err := (&LocalLLM{Engine: e, ChatTemplate: "chatmll"}).Complete(ctx, Request{Messages: msgs, MaxTokens: 1}); err == nil {
		t.Fatal("a mistyped template name was accepted")
	}
}
