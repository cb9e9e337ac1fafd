package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// tokenizerJSON is the part of a Hugging Face tokenizer.json (the format of
// the tokenizers library) that decides how llama.cpp must tokenize.
type tokenizerJSON struct {
	path          string
	AddedTokens   []addedToken `json:"added_tokens"`
	Normalizer    *component   `json:"normalizer"`
	PreTokenizer  *component   `json:"pre_tokenizer"`
	PostProcessor *component   `json:"post_processor"`
	Model         struct {
		Type         string          `json:"type"`
		Vocab        json.RawMessage `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		UnkToken     *string         `json:"unk_token"`
		ByteFallback bool            `json:"byte_fallback"`
	} `json:"model"`

	vocab  map[string]int32 // model.vocab, checked
	merges [][2]string      // model.merges as pairs, in rank order
}

// addedToken is one entry of added_tokens.
type addedToken struct {
	ID      int64  `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

// component is a normalizer, pre-tokenizer or post-processor: a tagged union
// whose variants share field names, so one struct holds all the fields used.
type component struct {
	Type          string      `json:"type"`
	Normalizers   []component `json:"normalizers"`
	PreTokenizers []component `json:"pretokenizers"`
	Processors    []component `json:"processors"`
	Pattern       struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content        string  `json:"content"`
	Prepend        string  `json:"prepend"`
	Replacement    string  `json:"replacement"`
	PrependScheme  string  `json:"prepend_scheme"`
	AddPrefixSpace *bool   `json:"add_prefix_space"`
	UseRegex       *bool   `json:"use_regex"`
	Single         []piece `json:"single"`
}

// piece is one item of a TemplateProcessing template.
type piece struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

// walk calls fn on c and every component nested in it, depth first.
func (c *component) walk(fn func(*component)) {
	if c == nil {
		return
	}
	fn(c)
	for _, list := range [][]component{c.Normalizers, c.PreTokenizers, c.Processors} {
		for i := range list {
			list[i].walk(fn)
		}
	}
}

// maxTokenID bounds token ids so a corrupt file cannot make the reader
// allocate an absurd vocabulary; the largest real vocabularies are ~260k.
const maxTokenID = 1 << 24

// parseTokenizerJSON decodes and checks tokenizer.json; path names the file
// in errors.
func parseTokenizerJSON(path string, data []byte) (*tokenizerJSON, error) {
	tj := &tokenizerJSON{path: path}
	if err := json.Unmarshal(data, tj); err != nil {
		return nil, fmt.Errorf("hf: %s: %w", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("hf: %s: model.type is %q; only BPE tokenizers are supported", path, tj.Model.Type)
	}
	var vocab map[string]int64
	if err := json.Unmarshal(tj.Model.Vocab, &vocab); err != nil || vocab == nil {
		return nil, fmt.Errorf("hf: %s: model.vocab must be an object of token ids: %v", path, err)
	}
	tj.vocab = make(map[string]int32, len(vocab))
	for tok, id := range vocab {
		if id < 0 || id >= maxTokenID {
			return nil, fmt.Errorf("hf: %s: model.vocab[%q]: id %d out of range [0, %d)", path, tok, id, maxTokenID)
		}
		tj.vocab[tok] = int32(id)
	}
	for i, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID >= maxTokenID {
			return nil, fmt.Errorf("hf: %s: added_tokens[%d] (%q): id %d out of range [0, %d)", path, i, a.Content, a.ID, maxTokenID)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("hf: %s: added_tokens[%d]: empty content", path, i)
		}
	}
	merges, err := parseMerges(tj.Model.Merges)
	if err != nil {
		return nil, fmt.Errorf("hf: %s: model.merges: %w", path, err)
	}
	for i, m := range merges {
		for _, s := range []string{m[0], m[1], m[0] + m[1]} {
			if _, ok := tj.vocab[s]; !ok {
				return nil, fmt.Errorf("hf: %s: model.merges[%d] (%q %q): %q is not in model.vocab", path, i, m[0], m[1], s)
			}
		}
	}
	tj.merges = merges
	return tj, nil
}

// parseMerges accepts both encodings of model.merges: the older list of
// "left right" strings and the newer list of [left, right] pairs (which
// allows spaces inside a part).
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			// Split at the first space after the first byte, as llama.cpp
			// reads its own merges back.
			j := strings.IndexByte(s[min(1, len(s)):], ' ')
			if j < 0 {
				return nil, fmt.Errorf("[%d] %q has no space separating the two parts", i, s)
			}
			j += min(1, len(s))
			out[i] = [2]string{s[:j], s[j+1:]}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("want a list of \"left right\" strings or of [left, right] pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("[%d] has %d parts, want 2", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// byteLevel reports whether the pre-tokenizer maps bytes to the GPT-2
// byte-to-unicode alphabet, and whether that step also splits with the GPT-2
// regex (use_regex, default true in the tokenizers library).
func (tj *tokenizerJSON) byteLevel() (found, useRegex bool) {
	tj.PreTokenizer.walk(func(c *component) {
		if c.Type == "ByteLevel" {
			found = true
			useRegex = c.UseRegex == nil || *c.UseRegex
		}
	})
	return found, useRegex
}

// splitRegexes returns the Regex patterns of the Split pre-tokenizers.
func (tj *tokenizerJSON) splitRegexes() []string {
	var out []string
	tj.PreTokenizer.walk(func(c *component) {
		if c.Type == "Split" && c.Pattern.Regex != nil {
			out = append(out, *c.Pattern.Regex)
		}
	})
	return out
}

// Pre-tokenizer regexes of tokenizer.json, by the llama.cpp pre-tokenizer
// type whose built-in regex splits text the same way (llama-vocab.cpp). The
// keys are the exact Split patterns of the released tokenizers.
var knownSplits = map[string]string{
	// Llama-3, Llama-3.1, Llama-3.2 (digits in groups of up to three).
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: "llama-bpe",
	// Qwen2, Qwen2.5, Qwen3 (single digits).
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: "qwen2",
}

// checkNormalizer rejects normalizer steps llama.cpp does not perform, which
// would make it tokenize differently without any error. allowed lists the
// types it can stand in for: for byte-level BPE only NFC (llama.cpp does
// not normalize, so non-NFC input may tokenize differently; the texts that
// matter are NFC already), for SPM the Prepend and Replace steps that
// add_space_prefix and the "▁" escaping reproduce.
func (tj *tokenizerJSON) checkNormalizer(allowed ...string) error {
	var bad string
	tj.Normalizer.walk(func(c *component) {
		if c.Type != "Sequence" && !slices.Contains(allowed, c.Type) && bad == "" {
			bad = c.Type
		}
	})
	if bad != "" {
		return fmt.Errorf("hf: %s: normalizer: a %q step has no llama.cpp equivalent", tj.path, bad)
	}
	return nil
}

// preType returns llama.cpp's pre-tokenizer name for a byte-level BPE
// tokenizer, or an error naming the field llama.cpp has no equivalent for.
func (tj *tokenizerJSON) preType() (string, error) {
	if err := tj.checkNormalizer("NFC"); err != nil {
		return "", err
	}
	prefix := false
	tj.PreTokenizer.walk(func(c *component) {
		prefix = prefix || (c.Type == "ByteLevel" && c.AddPrefixSpace != nil && *c.AddPrefixSpace)
	})
	if prefix {
		return "", fmt.Errorf("hf: %s: pre_tokenizer: ByteLevel add_prefix_space=true has no llama.cpp equivalent", tj.path)
	}
	splits := tj.splitRegexes()
	_, useRegex := tj.byteLevel()
	switch {
	case len(splits) == 0 && useRegex:
		return "gpt-2", nil // ByteLevel's own GPT-2 regex
	case len(splits) == 1 && !useRegex:
		if name, ok := knownSplits[splits[0]]; ok {
			return name, nil
		}
		return "", fmt.Errorf("hf: %s: pre_tokenizer: Split regex %q matches no pre-tokenizer type this converter knows for llama.cpp", tj.path, splits[0])
	}
	return "", fmt.Errorf("hf: %s: pre_tokenizer: %d Split regexes with ByteLevel use_regex=%v match no llama.cpp pre-tokenizer type", tj.path, len(splits), useRegex)
}

// spmSpaces checks that an SPM-style tokenizer turns spaces into "▁" and
// reports whether it prefixes each text segment with one. The prefix comes
// from a Prepend("▁") normalizer (Llama-2, Mistral) or a Metaspace
// pre-tokenizer with add_prefix_space or prepend_scheme "first"/"always";
// Gemma has neither.
func (tj *tokenizerJSON) spmSpaces() (prefix bool, err error) {
	if err := tj.checkNormalizer("Prepend", "Replace"); err != nil {
		return false, err
	}
	const marker = "\u2581"
	replaces := false
	tj.Normalizer.walk(func(c *component) {
		switch c.Type {
		case "Prepend":
			prefix = prefix || c.Prepend == marker
		case "Replace":
			replaces = replaces || (c.Pattern.String != nil && *c.Pattern.String == " " && c.Content == marker)
		}
	})
	tj.PreTokenizer.walk(func(c *component) {
		switch c.Type {
		case "Metaspace":
			replaces = replaces || c.Replacement == marker
			prefix = prefix || (c.AddPrefixSpace != nil && *c.AddPrefixSpace) || c.PrependScheme == "first" || c.PrependScheme == "always"
		}
	})
	if !replaces {
		return false, fmt.Errorf("hf: %s: normalizer/pre_tokenizer: SentencePiece-style BPE but no Replace(\" \" -> \"▁\") or Metaspace step", tj.path)
	}
	return prefix, nil
}

// template returns the special tokens a TemplateProcessing post-processor
// puts before and after a single sequence (e.g. Llama-3's BOS, which its
// tokenizer_config.json does not state as add_bos_token).
func (tj *tokenizerJSON) template() (before, after []string) {
	tj.PostProcessor.walk(func(c *component) {
		if c.Type != "TemplateProcessing" {
			return
		}
		seen := false
		for _, p := range c.Single {
			switch {
			case p.Sequence != nil:
				seen = true
			case p.SpecialToken != nil && !seen:
				before = append(before, p.SpecialToken.ID)
			case p.SpecialToken != nil:
				after = append(after, p.SpecialToken.ID)
			}
		}
	})
	return before, after
}
