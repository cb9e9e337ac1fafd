package llama

import (
	"encoding/json"
	"github.com/fireact/fireact/llama/hf/hftest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const tokenizersDir = "../../shared/data/tokenizers"

// referenceTokenizations is reference_tokenizations.json: Hugging Face's ids
// for sample texts, per tokenizer folder.
type referenceTokenizations struct {
	Texts map[string][]struct {
		Text         string  `json:"text"`
		IDsNoSpecial []Token `json:"ids_no_special"`
		IDsSpecial   []Token `json:"ids_special"`
	} `json:"texts"`
}

// writeTokenizerModel converts a real Hugging Face tokenizer into a
// vocab-only GGUF model and returns its path.
func writeTokenizerModel(t testing.TB, dir string) string { return hftest.WriteTokenizerModel(t, dir) }

// TestHFTokenizerMatchesReference converts each real tokenizer and checks
// that llama.cpp tokenizes every reference text to Hugging Face's ids, with
// and without the special tokens the tokenizer adds. Hugging Face always
// recognizes special-token text (such as "<|im_start|>") in the input, so
// ParseSpecial is on in both cases.
func TestHFTokenizerMatchesReference(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(tokenizersDir, "reference_tokenizations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref referenceTokenizations
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"llama-3.1", "qwen3", "gemma-3", "mistral-v0.1"} {
		t.Run(name, func(t *testing.T) {
			cases := ref.Texts[name]
			if len(cases) == 0 {
				t.Fatalf("no reference texts for %s", name)
			}
			m, err := LoadModel(writeTokenizerModel(t, filepath.Join(tokenizersDir, name)), ModelOptions{VocabOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			for _, c := range cases {
				for _, v := range []struct {
					addSpecial bool
					want       []Token
				}{{false, c.IDsNoSpecial}, {true, c.IDsSpecial}} {
					got, err := m.Tokenize(c.Text, TokenizeOptions{AddSpecial: v.addSpecial, ParseSpecial: true})
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, v.want) {
						t.Errorf("%q (add special %v):\n got %v\nwant %v", c.Text, v.addSpecial, got, v.want)
					}
				}
			}
		})
	}
}
