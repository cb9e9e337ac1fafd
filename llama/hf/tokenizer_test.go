package hf

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
)

const tokenizersDir = "../../../shared/data/tokenizers"

// qwenStyleJSON is a tokenizer.json with every field of Qwen3's released file
// (byte-level BPE with the Qwen2 Split regex, merges as pairs) and a
// six-token vocabulary plus two added tokens.
const qwenStyleJSON = `{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [
    {"id": 6, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 7, "content": "<tool_call>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}
  ],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
  ]},
  "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
  "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4, "c": 5},
    "merges": [["a", "b"], ["Ġ", "ab"]]}
}`

// qwenStyleConfig is a tokenizer_config.json shaped like Qwen3's.
const qwenStyleConfig = `{
  "add_bos_token": false,
  "add_prefix_space": false,
  "added_tokens_decoder": {
    "6": {"content": "<|endoftext|>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true}
  },
  "bos_token": null,
  "chat_template": "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{%- endfor %}",
  "clean_up_tokenization_spaces": false,
  "eos_token": "<|endoftext|>",
  "errors": "replace",
  "model_max_length": 131072,
  "pad_token": "<|endoftext|>",
  "split_special_tokens": false,
  "tokenizer_class": "Qwen2Tokenizer",
  "unk_token": null
}`

// writeDir writes files (name -> content) into a new directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadTokenizerByteLevel(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"tokenizer.json":         qwenStyleJSON,
		"tokenizer_config.json":  qwenStyleConfig,
		"generation_config.json": `{"bos_token_id": 6, "eos_token_id": [6, 7], "pad_token_id": 6}`,
		"config.json":            `{"architectures": ["Qwen3ForCausalLM"], "bos_token_id": 6, "eos_token_id": 6, "vocab_size": 10}`,
	})
	tok, err := ReadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := []string{"a", "b", "ab", "Ġ", "Ġab", "c", "<|endoftext|>", "<tool_call>", "[PAD8]", "[PAD9]"}
	wantTypes := []int32{1, 1, 1, 1, 1, 1, TokenControl, TokenUserDefined, TokenUnused, TokenUnused}
	if tok.Model != ModelBPE || tok.Pre != "qwen2" || !slices.Equal(tok.Tokens, wantTokens) || !slices.Equal(tok.Types, wantTypes) {
		t.Fatalf("model %q pre %q\ntokens %q\ntypes %v", tok.Model, tok.Pre, tok.Tokens, tok.Types)
	}
	if !slices.Equal(tok.Merges, []string{"a b", "Ġ ab"}) || tok.Scores != nil {
		t.Errorf("merges %q scores %v", tok.Merges, tok.Scores)
	}
	// tokenizer_config.json names eos and pad; generation_config.json fills
	// in the bos it leaves null.
	if tok.BOS != 6 || tok.EOS != 6 || tok.PAD != 6 || tok.UNK != NoToken || tok.AddBOS || tok.AddEOS {
		t.Errorf("bos %d eos %d pad %d unk %d add bos %v add eos %v", tok.BOS, tok.EOS, tok.PAD, tok.UNK, tok.AddBOS, tok.AddEOS)
	}
	if !strings.HasPrefix(tok.ChatTemplate, "{%- for message") || tok.Len() != 10 {
		t.Errorf("template %q, %d tokens", tok.ChatTemplate, tok.Len())
	}

	w := gguf.NewWriter()
	if err := tok.SetGGUF(w); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tok.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"tokenizer.ggml.model":         "gpt2",
		"tokenizer.ggml.pre":           "qwen2",
		"tokenizer.ggml.bos_token_id":  uint32(6),
		"tokenizer.ggml.eos_token_id":  uint32(6),
		"tokenizer.ggml.add_bos_token": false,
		"tokenizer.ggml.add_eos_token": false,
	} {
		if got, ok := f.Get(key); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if got, _ := f.Strings("tokenizer.ggml.merges"); !slices.Equal(got, tok.Merges) {
		t.Errorf("merges %q", got)
	}
	for _, key := range []string{"tokenizer.ggml.scores", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_space_prefix"} {
		if _, ok := f.Get(key); ok {
			t.Errorf("%s is set for a byte-level BPE tokenizer without it", key)
		}
	}
}

// TestReadTokenizerMistral checks the SentencePiece-style conversion on the
// real Mistral-7B-v0.1 files: byte tokens, the unknown token, the space
// prefix, and scores that order tokens as the merges do.
func TestReadTokenizerMistral(t *testing.T) {
	tok, err := ReadTokenizer(filepath.Join(tokenizersDir, "mistral-v0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Model != ModelSPM || tok.Pre != "" || tok.Len() != 32000 || tok.Merges != nil || !tok.AddSpacePrefix {
		t.Fatalf("model %q pre %q len %d merges %d prefix %v", tok.Model, tok.Pre, tok.Len(), len(tok.Merges), tok.AddSpacePrefix)
	}
	if tok.BOS != 1 || tok.EOS != 2 || tok.UNK != 0 || tok.PAD != NoToken || !tok.AddBOS || tok.AddEOS {
		t.Errorf("bos %d eos %d unk %d pad %d add bos %v add eos %v", tok.BOS, tok.EOS, tok.UNK, tok.PAD, tok.AddBOS, tok.AddEOS)
	}
	if tok.Types[0] != TokenUnknown || tok.Types[1] != TokenControl || tok.Types[13] != TokenByte || tok.Tokens[13] != "<0x0A>" {
		t.Errorf("types %v, token 13 %q", tok.Types[:14], tok.Tokens[13])
	}
	// The first merges of the file are "▁ t" and "i n": their results score
	// 0 and -1, above any later merge's.
	id := func(s string) int { return slices.Index(tok.Tokens, s) }
	if tok.Scores[id("▁t")] != 0 || tok.Scores[id("in")] != -1 || tok.Scores[id("▁the")] >= tok.Scores[id("in")] {
		t.Errorf("scores ▁t %v in %v ▁the %v", tok.Scores[id("▁t")], tok.Scores[id("in")], tok.Scores[id("▁the")])
	}
	if tok.ChatTemplate != "" {
		t.Errorf("Mistral-7B-v0.1 has no chat template, got %q", tok.ChatTemplate)
	}
}

func TestReadTokenizerErrors(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(qwenStyleJSON, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(qwenStyleJSON, old, new, 1)
	}
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string // in the error, with the file name
	}{
		{"no tokenizer.json", map[string]string{"tokenizer_config.json": qwenStyleConfig}, "tokenizer.json"},
		{"bad JSON", map[string]string{"tokenizer.json": qwenStyleJSON[:100]}, "tokenizer.json: unexpected end"},
		{"not BPE", map[string]string{"tokenizer.json": replace(`"type": "BPE"`, `"type": "WordPiece"`)}, `tokenizer.json: model.type is "WordPiece"`},
		{"merge of unknown token", map[string]string{"tokenizer.json": replace(`["a", "b"]`, `["a", "x"]`)}, `tokenizer.json: model.merges[0] ("a" "x"): "x" is not in model.vocab`},
		{"merge triple", map[string]string{"tokenizer.json": replace(`["a", "b"]`, `["a", "b", "c"]`)}, "tokenizer.json: model.merges: [0] has 3 parts"},
		{"negative id", map[string]string{"tokenizer.json": replace(`"c": 5`, `"c": -5`)}, `tokenizer.json: model.vocab["c"]: id -5`},
		{"shared id", map[string]string{"tokenizer.json": replace(`"c": 5`, `"c": 0`)}, `tokenizer.json: model.vocab: "a" and "c" both have id 0`},
		{"added token clash", map[string]string{"tokenizer.json": replace(`"id": 7`, `"id": 5`)}, `tokenizer.json: added_tokens[1]: id 5 is "<tool_call>", but model.vocab has "c" there`},
		{"sparse ids", map[string]string{"tokenizer.json": replace(`"id": 7`, `"id": 70000`)}, "tokenizer.json: the largest token id is 70000 but only 8 tokens are defined"},
		{"unknown regex", map[string]string{"tokenizer.json": replace(`\\p{N}|`, `\\p{N}{1,2}|`)}, "tokenizer.json: pre_tokenizer: Split regex"},
		{"unsupported normalizer", map[string]string{"tokenizer.json": replace(`{"type": "NFC"}`, `{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}`)}, `tokenizer.json: normalizer: a "Lowercase" step has no llama.cpp equivalent`},
		{"byte-level prefix space", map[string]string{"tokenizer.json": replace(`"type": "ByteLevel", "add_prefix_space": false`, `"type": "ByteLevel", "add_prefix_space": true`)}, "tokenizer.json: pre_tokenizer: ByteLevel add_prefix_space=true"},
		{"neither byte-level nor byte fallback", map[string]string{"tokenizer.json": replace(`{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}`, `{"type": "Digits"}`)}, "tokenizer.json: neither a ByteLevel pre_tokenizer nor model.byte_fallback"},
		{"bos not in vocab", map[string]string{"tokenizer.json": qwenStyleJSON, "tokenizer_config.json": strings.Replace(qwenStyleConfig, `"bos_token": null`, `"bos_token": "<s>"`, 1)}, `tokenizer_config.json: bos_token "<s>" is not in the vocabulary`},
		{"add_bos not a bool", map[string]string{"tokenizer.json": qwenStyleJSON, "tokenizer_config.json": strings.Replace(qwenStyleConfig, `"add_bos_token": false`, `"add_bos_token": "no"`, 1)}, "tokenizer_config.json: add_bos_token must be a boolean"},
		{"add_bos without bos", map[string]string{"tokenizer.json": qwenStyleJSON, "tokenizer_config.json": strings.Replace(qwenStyleConfig, `"add_bos_token": false`, `"add_bos_token": true`, 1)}, "add_bos_token is set but there is no bos token"},
		{"bad chat template", map[string]string{"tokenizer.json": qwenStyleJSON, "tokenizer_config.json": `{"chat_template": [{"name": "tool_use", "template": "x"}]}`}, `tokenizer_config.json: chat_template: a list of named templates without one named "default"`},
		{"eos id out of range", map[string]string{"tokenizer.json": qwenStyleJSON, "config.json": `{"eos_token_id": 99}`}, "config.json: eos_token_id 99 is outside the vocabulary (8 tokens)"},
		{"eos id not a number", map[string]string{"tokenizer.json": qwenStyleJSON, "generation_config.json": `{"eos_token_id": "2"}`}, "generation_config.json: eos_token_id must be an integer or a list of integers"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadTokenizer(writeDir(t, c.files))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
}

// FuzzReadTokenizer feeds arbitrary tokenizer.json and tokenizer_config.json
// contents to the parser: it must never panic, and whatever it accepts must
// make GGUF tokenizer keys that the GGUF reader (which rejects what would
// make llama.cpp abort) accepts.
func FuzzReadTokenizer(f *testing.F) {
	f.Add([]byte(qwenStyleJSON), []byte(qwenStyleConfig))
	f.Add([]byte(strings.Replace(qwenStyleJSON, `"byte_fallback": false`, `"byte_fallback": true`, 1)), []byte(`{"add_bos_token": true, "bos_token": {"content": "<|endoftext|>"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"<0x00>": 0, "▁a": 1}, "merges": [], "byte_fallback": true}, "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}}`), []byte(nil))
	f.Fuzz(func(t *testing.T, tokenizerJSON, configJSON []byte) {
		files := tokenizerFiles{dir: "fuzz", tokenizer: tokenizerJSON, config: configJSON}
		if len(configJSON) == 0 {
			files.config = nil
		}
		tok, err := files.parse()
		if err != nil {
			return
		}
		w := gguf.NewWriter()
		if err := w.Set("general.architecture", "llama"); err != nil {
			t.Fatal(err)
		}
		if err := tok.SetGGUF(w); err != nil {
			t.Fatalf("parsed but SetGGUF fails: %v", err)
		}
		path := filepath.Join(t.TempDir(), "tok.gguf")
		if err := w.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		if _, err := gguf.Read(path); err != nil {
			t.Fatalf("parsed but the GGUF reader rejects the keys: %v", err)
		}
	})
}
