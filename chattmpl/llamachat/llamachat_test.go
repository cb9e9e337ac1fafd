package llamachat

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fireact/fireact/chattmpl/chattmpltest"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/hf/hftest"
)

const tokenizersDir = "../../../shared/data/tokenizers"

func loadReferences(t *testing.T) chattmpltest.References[llama.ChatMessage] {
	t.Helper()
	return chattmpltest.Load[llama.ChatMessage](t)
}

// tokenizerModel converts a real Hugging Face tokenizer (with its chat
// template) into a vocab-only GGUF model and loads it.
func tokenizerModel(t *testing.T, name string) *llama.Model {
	t.Helper()
	path := hftest.WriteTokenizerModel(t, filepath.Join(tokenizersDir, name))
	m, err := llama.LoadModel(path, llama.ModelOptions{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestModelTemplateAsHuggingFace renders every reference conversation with
// the template stored in the converted GGUF and checks the text against
// jinja2's (less the BOS text the tokenizer adds itself) and the tokens
// against Hugging Face's apply_chat_template(tokenize=True), which tokenizes
// the rendering without adding special tokens: exactly one BOS, the same ids.
// Mistral-7B-v0.1 has no template of its own; its instruct sibling's is given
// as a Jinja override.
func TestModelTemplateAsHuggingFace(t *testing.T) {
	refs := loadReferences(t)
	for _, c := range []struct{ tokenizer, template, override string }{
		{"llama-3.1", "llama-3.1", ""},
		{"qwen3", "qwen3", ""},
		{"gemma-3", "gemma-3", ""},
		{"mistral-v0.1", "mistral-instruct-v0.1", refs.Templates["mistral-instruct-v0.1"].Source},
	} {
		t.Run(c.tokenizer, func(t *testing.T) {
			m := tokenizerModel(t, c.tokenizer)
			r, err := New(m, c.override)
			if err != nil {
				t.Fatal(err)
			}
			if r.Builtin() != "" {
				t.Fatalf("rendered by llama.cpp's %q, want Jinja", r.Builtin())
			}
			bos, _ := m.ChatTokens()
			if ref := refs.Templates[c.template].BOS; (ref == nil) != (bos == "") || ref != nil && *ref != bos {
				t.Errorf("bos_token %q, Hugging Face's %v", bos, ref)
			}
			n := 0
			for _, rc := range refs.Cases {
				if rc.Template != c.template {
					continue
				}
				n++
				name := rc.Conversation
				if rc.AddGenerationPrompt {
					name += "+gen"
				}
				got, err := r.Render(refs.Conversations[rc.Conversation], rc.AddGenerationPrompt)
				if rc.Text == nil {
					if err == nil || !strings.Contains(err.Error(), rc.Error) {
						t.Errorf("%s: error %v, want the template's %q", name, err, rc.Error)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				want := *rc.Text
				if m.Info().AddBOS {
					if !strings.HasPrefix(want, bos) {
						t.Fatalf("%s: reference does not start with the BOS text %q", name, bos)
					}
					want = want[len(bos):]
				}
				if got != want {
					t.Errorf("%s:\ngot  %q\nwant %q", name, got, want)
				}
				toks, err := m.Tokenize(got, llama.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
				if err != nil {
					t.Fatal(err)
				}
				hfToks, err := m.Tokenize(*rc.Text, llama.TokenizeOptions{ParseSpecial: true})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(toks, hfToks) {
					t.Errorf("%s: tokens %v\nHugging Face's %v", name, toks, hfToks)
				}
			}
			if n < 10 {
				t.Fatalf("%d reference cases for %s", n, c.template)
			}
		})
	}
}

// TestOverrides checks the other ways New picks a template: llama.cpp's
// built-in names render through llama.cpp, and a model without a template, a
// mistyped name and a broken template are errors saying so.
func TestOverrides(t *testing.T) {
	m := tokenizerModel(t, "mistral-v0.1")
	msgs := []llama.ChatMessage{{Role: "user", Content: "Hello!"}, {Role: "assistant", Content: "Hi."}, {Role: "user", Content: "Bye."}}

	r, err := New(m, "mistral-v1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Builtin() != "mistral-v1" {
		t.Fatalf("builtin %q", r.Builtin())
	}
	got, err := r.Render(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.ApplyChatTemplate("mistral-v1", msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	if got != want || !strings.Contains(got, "[INST]") {
		t.Fatalf("built-in rendering %q, llama.cpp's %q", got, want)
	}

	for _, c := range []struct{ override, want string }{
		{"", "no tokenizer.chat_template"},
		{"mistral-v9", "neither a llama.cpp built-in name"},
		{"{% for m in messages %}{{ m.content }}", "compile"},
	} {
		if _, err := New(m, c.override); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q): error %v, want one saying %q", c.override, err, c.want)
		}
	}
	if !slices.Contains(llama.BuiltinChatTemplates(), "chatml") || llama.IsBuiltinChatTemplate("mistral-v9") {
		t.Errorf("built-in names %v", llama.BuiltinChatTemplates())
	}
}
