package llama

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
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

// writeTokenizerModel converts the Hugging Face tokenizer in dir into a
// vocab-only GGUF model (llama hyper-parameters, no tensors) and returns its
// path: vocab-only loading reads no weights, so even Gemma-3's 262k-token
// vocabulary stays a few MiB and loads in well under a second.
func writeTokenizerModel(t testing.TB, dir string) string {
	t.Helper()
	tok, err := hf.ReadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	for _, kv := range []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: filepath.Base(dir)},
		{Key: "llama.vocab_size", Value: uint32(tok.Len())},
		{Key: "llama.context_length", Value: uint32(2048)},
		{Key: "llama.embedding_length", Value: uint32(64)},
		{Key: "llama.block_count", Value: uint32(1)},
		{Key: "llama.feed_forward_length", Value: uint32(128)},
		{Key: "llama.rope.dimension_count", Value: uint32(16)},
		{Key: "llama.attention.head_count", Value: uint32(4)},
		{Key: "llama.attention.head_count_kv", Value: uint32(4)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(1e-5)},
	} {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := tok.SetGGUF(w); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), filepath.Base(dir)+".gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

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
