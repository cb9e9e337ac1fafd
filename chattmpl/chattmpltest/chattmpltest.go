// Package chattmpltest loads chattmpl's reference renderings
// (chattmpl/testdata/renders.json, written by testdata/gen.py: jinja2 set up
// as transformers' apply_chat_template sets it up, over the real templates of
// ../shared/data/tokenizers) for the tests of every package that renders chat
// text. It imports nothing of the project, so chattmpl's own tests use it.
package chattmpltest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Template is a real chat template with the BOS and EOS texts its tokenizer
// config names (nil when it names none).
type Template struct {
	Source string  `json:"source"`
	BOS    *string `json:"bos_token"`
	EOS    *string `json:"eos_token"`
}

// Case is one rendering: Text, or the Error the template raised.
type Case struct {
	Template            string  `json:"template"`
	Conversation        string  `json:"conversation"`
	AddGenerationPrompt bool    `json:"add_generation_prompt"`
	Text                *string `json:"text"`
	Error               string  `json:"error"`
}

// References are the renderings, with conversations of messages M (any type
// with "role" and "content" JSON fields: chattmpl.Message, llama.ChatMessage).
type References[M any] struct {
	Templates     map[string]Template `json:"templates"`
	Conversations map[string][]M      `json:"conversations"`
	Cases         []Case              `json:"cases"`
}

// Load reads the references, wherever the calling test's package is.
func Load[M any](t testing.TB) References[M] {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "testdata", "renders.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r References[M]
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// Find returns the template source, the messages and the reference text of
// one rendering ("" when the template raised an error there); the test fails
// when there is no such rendering.
func (r References[M]) Find(t testing.TB, template, conversation string, addGenerationPrompt bool) (string, []M, string) {
	t.Helper()
	for _, c := range r.Cases {
		if c.Template == template && c.Conversation == conversation && c.AddGenerationPrompt == addGenerationPrompt {
			return r.Templates[template].Source, r.Conversations[conversation], Str(c.Text)
		}
	}
	t.Fatalf("no reference rendering of %s with %s (generation prompt %v)", conversation, template, addGenerationPrompt)
	return "", nil, ""
}

// Str is *p, or "" for nil.
func Str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
