package main

import (
	"bytes"
	"encoding/json"
	"github.com/fireact/fireact/llama/hf/hftest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mistralTokenizerModel converts the real Mistral-7B-v0.1 tokenizer into a
// vocab-only GGUF file (what `fireact tokenize` loads) and returns its path.
func mistralTokenizerModel(t *testing.T) string {
	return hftest.WriteTokenizerModel(t, "../../../shared/data/tokenizers/mistral-v0.1")
}

// runFireact runs the CLI with args and stdin, returning standard output.
func runFireact(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter, app.Reader = &out, &out, strings.NewReader(stdin)
	err := app.Run(append([]string{"fireact"}, args...))
	return out.String(), err
}

func TestTokenizeCommand(t *testing.T) {
	model := mistralTokenizerModel(t)
	const text = "Hello, world!"
	textFile := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(textFile, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// Hugging Face's ids for the text (reference_tokenizations.json).
	withBOS := []int{1, 22557, 28725, 1526, 28808}
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		want  []int
	}{
		{"argument", "", []string{"tokenize", "-m", model, "--ids", text}, withBOS},
		{"file", "", []string{"tokenize", "-m", model, "--ids", "--file", textFile}, withBOS},
		{"stdin", text, []string{"tokenize", "-m", model, "--ids", "--stdin"}, withBOS},
		{"no-add-special", "", []string{"tokenize", "-m", model, "--ids", "--no-add-special", text}, withBOS[1:]},
		{"special text stays text", "", []string{"tokenize", "-m", model, "--ids", "--no-add-special", "</s>"}, []int{1867, 28713, 28767}},
		{"parse-special", "", []string{"tokenize", "-m", model, "--ids", "--no-add-special", "--parse-special", "</s>"}, []int{2}},
		{"empty", "", []string{"tokenize", "-m", model, "--ids", "--no-add-special", ""}, []int{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := runFireact(t, c.stdin, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			if err := json.Unmarshal([]byte(out), &got); err != nil || got == nil {
				t.Fatalf("output %q is not one JSON array: %v", out, err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}

	t.Run("pieces", func(t *testing.T) {
		out, err := runFireact(t, "", "tokenize", "-m", model, text)
		if err != nil {
			t.Fatal(err)
		}
		want := "     1 -> '<s>'\n 22557 -> ' Hello'\n 28725 -> ','\n  1526 -> ' world'\n 28808 -> '!'\n"
		if out != want {
			t.Errorf("got\n%s\nwant\n%s", out, want)
		}
	})

	for _, args := range [][]string{
		{"tokenize", "-m", model},
		{"tokenize", "-m", model, "--stdin", text},
		{"tokenize", "-m", model, "--file", textFile, "--stdin"},
		{"tokenize", "-m", model, "a", "b"},
	} {
		if _, err := runFireact(t, "", args...); err == nil || !strings.Contains(err.Error(), "exactly one of") {
			t.Errorf("%v: err %v, want one about giving exactly one text", args, err)
		}
	}
}
