package hf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// Token types, as in enum llama_token_type (llama.h); stored in
// tokenizer.ggml.token_type.
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenUnused      int32 = 5
	TokenByte        int32 = 6
)

// Tokenizer models as llama.cpp names them in tokenizer.ggml.model.
const (
	// ModelBPE is byte-level BPE (GPT-2 style: Llama-3, Qwen): tokens are in
	// the byte-to-unicode alphabet and merges are stored.
	ModelBPE = "gpt2"
	// ModelSPM is SentencePiece-style BPE with byte fallback (Llama-2,
	// Mistral, Gemma): spaces are "▁", bytes are "<0xNN>" tokens and merges
	// are driven by the token scores.
	ModelSPM = "llama"
)

// NoToken marks an absent special token id.
const NoToken int32 = -1

// Tokenizer is a Hugging Face tokenizer in the form llama.cpp stores it in a
// GGUF file (the tokenizer.ggml.* keys). ReadTokenizer builds it; SetGGUF
// writes it.
type Tokenizer struct {
	// Model is ModelBPE or ModelSPM.
	Model string
	// Pre is the llama.cpp pre-tokenizer name (tokenizer.ggml.pre), e.g.
	// "llama-bpe" or "qwen2"; empty for SPM models, which have none.
	Pre string
	// Tokens, Types and Scores are indexed by token id. Scores is nil for
	// byte-level BPE (llama.cpp uses the merge ranks instead).
	Tokens []string
	Types  []int32
	Scores []float32
	// Merges are the BPE merges "left right" in rank order; nil for SPM,
	// whose llama.cpp tokenizer merges by score and never reads them.
	Merges []string
	// BOS, EOS, UNK and PAD are special token ids, or NoToken.
	BOS, EOS, UNK, PAD int32
	// AddBOS and AddEOS say whether tokenizing with special tokens adds them.
	AddBOS, AddEOS bool
	// AddSpacePrefix (SPM only) prefixes each text segment with "▁", as the
	// Hugging Face normalizer's Prepend step or Metaspace pre-tokenizer does.
	AddSpacePrefix bool
	// ChatTemplate is the Jinja chat template; empty if the model has none.
	ChatTemplate string
}

// Len returns the number of tokens.
func (t *Tokenizer) Len() int { return len(t.Tokens) }

// ReadTokenizer reads dir/tokenizer.json and dir/tokenizer_config.json, and
// when present dir/generation_config.json and dir/config.json (special ids
// the tokenizer files leave unset, and the model's vocab_size, to which the
// vocabulary is padded as the embedding matrix has that many rows) and the
// chat template files dir/chat_template.jinja or dir/chat_template.json.
// Errors name the file and the field.
func ReadTokenizer(dir string) (*Tokenizer, error) {
	var files tokenizerFiles
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{
		{"tokenizer.json", &files.tokenizer},
		{"tokenizer_config.json", &files.config},
		{"generation_config.json", &files.generation},
		{"config.json", &files.model},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil && (f.dst == &files.tokenizer || !errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("hf: read tokenizer: %w", err)
		}
		*f.dst = b
	}
	tmpl, err := readChatTemplateFiles(dir)
	if err != nil {
		return nil, err
	}
	files.dir, files.template = dir, tmpl
	return files.parse()
}

// tokenizerFiles are the contents of a checkpoint's tokenizer files; nil
// for an absent optional file.
type tokenizerFiles struct {
	dir                                  string
	tokenizer, config, generation, model []byte
	template                             string // from chat_template.jinja/.json
}

// parse parses and checks the files and builds the tokenizer.
func (f tokenizerFiles) parse() (*Tokenizer, error) {
	tj, err := parseTokenizerJSON(filepath.Join(f.dir, "tokenizer.json"), f.tokenizer)
	if err != nil {
		return nil, err
	}
	var cfg *tokenizerConfig
	if f.config != nil {
		if cfg, err = parseTokenizerConfig(filepath.Join(f.dir, "tokenizer_config.json"), f.config); err != nil {
			return nil, err
		}
	}
	var extra []idsFile
	for _, x := range []struct {
		name string
		data []byte
	}{{"generation_config.json", f.generation}, {"config.json", f.model}} {
		if x.data == nil {
			continue
		}
		ids, err := parseIDsFile(filepath.Join(f.dir, x.name), x.data)
		if err != nil {
			return nil, err
		}
		extra = append(extra, ids)
	}
	return buildTokenizer(tj, cfg, extra, f.template)
}

// SetGGUF sets every tokenizer.ggml.* key llama.cpp reads to load this
// tokenizer, and tokenizer.chat_template, the way llama.cpp's
// convert_hf_to_gguf.py writes them: model, pre (byte-level BPE), tokens,
// token_type, scores (SPM), merges (byte-level BPE), the special ids that
// exist, add_bos_token, add_eos_token and add_space_prefix (SPM).
func (t *Tokenizer) SetGGUF(w *gguf.Writer) error {
	if err := t.validate(); err != nil {
		return err
	}
	kvs := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: t.Model},
	}
	if t.Model == ModelBPE {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.pre", Value: t.Pre})
	}
	kvs = append(kvs,
		gguf.KV{Key: "tokenizer.ggml.tokens", Value: t.Tokens},
		gguf.KV{Key: "tokenizer.ggml.token_type", Value: t.Types},
	)
	if t.Scores != nil {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.scores", Value: t.Scores})
	}
	if t.Model == ModelBPE {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.merges", Value: t.Merges})
	}
	for _, s := range []struct {
		key string
		id  int32
	}{
		{"tokenizer.ggml.bos_token_id", t.BOS},
		{"tokenizer.ggml.eos_token_id", t.EOS},
		{"tokenizer.ggml.unknown_token_id", t.UNK},
		{"tokenizer.ggml.padding_token_id", t.PAD},
	} {
		if s.id != NoToken {
			kvs = append(kvs, gguf.KV{Key: s.key, Value: uint32(s.id)})
		}
	}
	kvs = append(kvs,
		gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: t.AddBOS},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: t.AddEOS},
	)
	if t.Model == ModelSPM {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.ggml.add_space_prefix", Value: t.AddSpacePrefix})
	}
	if t.ChatTemplate != "" {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.chat_template", Value: t.ChatTemplate})
	}
	for _, kv := range kvs {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			return fmt.Errorf("hf: tokenizer to GGUF: %w", err)
		}
	}
	return nil
}

// validate checks what llama.cpp assumes of the tokenizer keys: it aborts on
// duplicate token texts and indexes types and scores by id unchecked.
func (t *Tokenizer) validate() error {
	n := len(t.Tokens)
	switch {
	case t.Model != ModelBPE && t.Model != ModelSPM:
		return fmt.Errorf("hf: tokenizer: model %q, want %q or %q", t.Model, ModelBPE, ModelSPM)
	case n == 0:
		return errors.New("hf: tokenizer: no tokens")
	case len(t.Types) != n:
		return fmt.Errorf("hf: tokenizer: %d tokens but %d token types", n, len(t.Types))
	case t.Scores != nil && len(t.Scores) != n:
		return fmt.Errorf("hf: tokenizer: %d tokens but %d scores", n, len(t.Scores))
	case t.Model == ModelBPE && t.Pre == "":
		return errors.New("hf: tokenizer: byte-level BPE without a pre-tokenizer type")
	}
	seen := make(map[string]int, n)
	for i, s := range t.Tokens {
		if s == "" {
			return fmt.Errorf("hf: tokenizer: token %d is empty", i)
		}
		if j, dup := seen[s]; dup {
			return fmt.Errorf("hf: tokenizer: tokens %d and %d are both %q (llama.cpp aborts on duplicates)", j, i, s)
		}
		seen[s] = i
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"bos", t.BOS}, {"eos", t.EOS}, {"unk", t.UNK}, {"pad", t.PAD}} {
		if s.id != NoToken && (s.id < 0 || int(s.id) >= n) {
			return fmt.Errorf("hf: tokenizer: %s id %d is outside the vocabulary (%d tokens)", s.name, s.id, n)
		}
	}
	if t.AddBOS && t.BOS == NoToken {
		return errors.New("hf: tokenizer: add_bos_token is set but there is no bos token")
	}
	if t.AddEOS && t.EOS == NoToken {
		return errors.New("hf: tokenizer: add_eos_token is set but there is no eos token")
	}
	return nil
}

// byteToken matches SentencePiece byte-fallback tokens such as "<0x0A>".
var byteToken = regexp.MustCompile(`^<0x[0-9A-Fa-f]{2}>$`)

// looksSpecial reports whether an added token that Hugging Face does not mark
// special should still be a control token, with the rule of
// convert_hf_to_gguf.py (does_token_look_special): "<|...|>" tokens such as
// Qwen's "<|fim_prefix|>", DeepSeek's "<｜...｜>", Gemma's "<unused…>" and a
// few names.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return (strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>")) ||
		(strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>")) ||
		(strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">"))
}
