package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tokenizerConfig is the part of tokenizer_config.json (the transformers
// tokenizer settings) that llama.cpp needs.
type tokenizerConfig struct {
	path         string
	AddBOS       *bool             `json:"add_bos_token"`
	AddEOS       *bool             `json:"add_eos_token"`
	specials     map[string]string // "bos" -> token text, for bos/eos/unk/pad
	ChatTemplate string
}

// parseTokenizerConfig decodes tokenizer_config.json. Special tokens are a
// string, an AddedToken object {"content": ...} or null; chat_template is a
// string or a list of {"name", "template"} of which "default" is used.
func parseTokenizerConfig(path string, data []byte) (*tokenizerConfig, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("hf: %s: %w", path, err)
	}
	cfg := &tokenizerConfig{path: path, specials: map[string]string{}}
	for _, k := range []struct {
		field string
		dst   **bool
	}{{"add_bos_token", &cfg.AddBOS}, {"add_eos_token", &cfg.AddEOS}} {
		v, ok := raw[k.field]
		if !ok || isNull(v) {
			continue
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, fmt.Errorf("hf: %s: %s must be a boolean: %w", path, k.field, err)
		}
		*k.dst = &b
	}
	for _, typ := range []string{"bos", "eos", "unk", "pad"} {
		field := typ + "_token"
		v, ok := raw[field]
		if !ok || isNull(v) {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			var obj struct {
				Content *string `json:"content"`
			}
			if err := json.Unmarshal(v, &obj); err != nil || obj.Content == nil {
				return nil, fmt.Errorf("hf: %s: %s must be a string or an object with \"content\"", path, field)
			}
			s = *obj.Content
		}
		cfg.specials[typ] = s
	}
	if v, ok := raw["chat_template"]; ok && !isNull(v) {
		t, err := parseChatTemplate(v)
		if err != nil {
			return nil, fmt.Errorf("hf: %s: chat_template: %w", path, err)
		}
		cfg.ChatTemplate = t
	}
	return cfg, nil
}

// parseChatTemplate accepts a template string or a list of named templates.
func parseChatTemplate(v json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(v, &named); err != nil {
		return "", errors.New("want a string or a list of {\"name\", \"template\"}")
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", errors.New("a list of named templates without one named \"default\"")
}

// readChatTemplateFiles reads the chat template newer checkpoints keep beside
// tokenizer_config.json: chat_template.jinja (plain text) or
// chat_template.json ({"chat_template": ...}). Empty if neither exists.
func readChatTemplateFiles(dir string) (string, error) {
	p := filepath.Join(dir, "chat_template.jinja")
	if b, err := os.ReadFile(p); err == nil {
		return string(b), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("hf: read tokenizer: %w", err)
	}
	p = filepath.Join(dir, "chat_template.json")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("hf: read tokenizer: %w", err)
	}
	var raw struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return "", fmt.Errorf("hf: %s: %w", p, err)
	}
	t, err := parseChatTemplate(raw.ChatTemplate)
	if err != nil {
		return "", fmt.Errorf("hf: %s: chat_template: %w", p, err)
	}
	return t, nil
}

// idsFile holds the special ids of generation_config.json or config.json.
type idsFile struct {
	path      string
	ids       map[string]int64 // "bos" -> id
	vocabSize int64            // config.json vocab_size, 0 if absent
}

// parseIDsFile reads bos_token_id, eos_token_id and pad_token_id (a number,
// or a list whose first entry is the primary one, as generation_config.json
// lists several end-of-generation ids) and vocab_size.
func parseIDsFile(path string, data []byte) (idsFile, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return idsFile{}, fmt.Errorf("hf: %s: %w", path, err)
	}
	f := idsFile{path: path, ids: map[string]int64{}}
	for _, typ := range []string{"bos", "eos", "pad"} {
		field := typ + "_token_id"
		v, ok := raw[field]
		if !ok || isNull(v) {
			continue
		}
		var id int64
		if err := json.Unmarshal(v, &id); err != nil {
			var list []int64
			if err := json.Unmarshal(v, &list); err != nil {
				return idsFile{}, fmt.Errorf("hf: %s: %s must be an integer or a list of integers", path, field)
			}
			if len(list) == 0 {
				continue
			}
			id = list[0]
		}
		f.ids[typ] = id
	}
	if v, ok := raw["vocab_size"]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &f.vocabSize); err != nil || f.vocabSize < 0 {
			return idsFile{}, fmt.Errorf("hf: %s: vocab_size must be a non-negative integer", path)
		}
	}
	return f, nil
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// buildTokenizer assembles the llama.cpp vocabulary from the parsed files.
//
// Token ids are the union of model.vocab and added_tokens; gaps, and ids up
// to config.json's vocab_size, become "[PAD<id>]" unused tokens, as
// convert_hf_to_gguf.py fills them. Types: added tokens marked special are
// control tokens, other added tokens user-defined (llama.cpp, like Hugging
// Face, splits them out of any text before BPE); SPM "<0xNN>" tokens are
// byte tokens.
func buildTokenizer(tj *tokenizerJSON, cfg *tokenizerConfig, extra []idsFile, tmplFile string) (*Tokenizer, error) {
	byteLevel, _ := tj.byteLevel()
	t := &Tokenizer{BOS: NoToken, EOS: NoToken, UNK: NoToken, PAD: NoToken}
	switch {
	case byteLevel:
		t.Model = ModelBPE
		pre, err := tj.preType()
		if err != nil {
			return nil, err
		}
		t.Pre = pre
	case tj.Model.ByteFallback:
		t.Model = ModelSPM
		prefix, err := tj.spmSpaces()
		if err != nil {
			return nil, err
		}
		t.AddSpacePrefix = prefix
	default:
		return nil, fmt.Errorf("hf: %s: neither a ByteLevel pre_tokenizer nor model.byte_fallback: not a tokenizer llama.cpp can load", tj.path)
	}

	n := int32(0)
	for _, id := range tj.vocab {
		n = max(n, id+1)
	}
	for _, a := range tj.AddedTokens {
		n = max(n, int32(a.ID)+1)
	}
	for _, f := range extra {
		if f.vocabSize > int64(n) {
			if f.vocabSize >= maxTokenID {
				return nil, fmt.Errorf("hf: %s: vocab_size %d is too large", f.path, f.vocabSize)
			}
			n = int32(f.vocabSize)
		}
	}
	// Real vocabularies are dense; a mostly empty id space is a corrupt file,
	// and filling it would allocate without bound.
	if known := len(tj.vocab) + len(tj.AddedTokens); int(n) > 2*known+1024 {
		return nil, fmt.Errorf("hf: %s: the largest token id is %d but only %d tokens are defined", tj.path, n-1, known)
	}
	t.Tokens = make([]string, n)
	t.Types = make([]int32, n)
	for tok, id := range tj.vocab {
		if t.Tokens[id] != "" {
			return nil, fmt.Errorf("hf: %s: model.vocab: %q and %q both have id %d", tj.path, min(t.Tokens[id], tok), max(t.Tokens[id], tok), id)
		}
		t.Tokens[id] = tok
		t.Types[id] = TokenNormal
		if t.Model == ModelSPM && byteToken.MatchString(tok) {
			t.Types[id] = TokenByte
		}
	}
	for i, a := range tj.AddedTokens {
		if old := t.Tokens[a.ID]; old != "" && old != a.Content {
			return nil, fmt.Errorf("hf: %s: added_tokens[%d]: id %d is %q, but model.vocab has %q there", tj.path, i, a.ID, a.Content, old)
		}
		content := a.Content
		switch {
		case t.Types[a.ID] == TokenByte:
			// keep: a byte token listed as added is still a byte
		case a.Special || (t.Model == ModelBPE && looksSpecial(content)):
			t.Types[a.ID] = TokenControl
		default:
			t.Types[a.ID] = TokenUserDefined
		}
		t.Tokens[a.ID] = content
	}
	for id := range t.Tokens {
		if t.Tokens[id] == "" {
			t.Tokens[id] = "[PAD" + strconv.Itoa(id) + "]"
			t.Types[id] = TokenUnused
		}
	}
	index := make(map[string]int32, n)
	for id, tok := range t.Tokens {
		if j, dup := index[tok]; dup {
			return nil, fmt.Errorf("hf: %s: tokens %d and %d are both %q", tj.path, j, id, tok)
		}
		index[tok] = int32(id)
	}

	if t.Model == ModelBPE {
		t.Merges = make([]string, len(tj.merges))
		for i, m := range tj.merges {
			if hasSpace(m[0]) || hasSpace(m[1]) {
				return nil, fmt.Errorf("hf: %s: model.merges[%d]: a part contains a space, which the GGUF merge list cannot hold", tj.path, i)
			}
			t.Merges[i] = m[0] + " " + m[1]
		}
	} else {
		t.Scores = spmScores(t, tj.merges, index)
	}

	if err := t.setSpecials(tj, cfg, extra, index); err != nil {
		return nil, err
	}
	switch {
	case cfg != nil && cfg.ChatTemplate != "":
		t.ChatTemplate = cfg.ChatTemplate
	default:
		t.ChatTemplate = tmplFile
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, tj.path)
	}
	return t, nil
}

// hasSpace reports whether a merge part cannot be stored in llama.cpp's
// space-separated merge strings.
func hasSpace(s string) bool { return s == "" || strings.Contains(s, " ") }

// spmScores gives each token the score llama.cpp's SPM tokenizer merges by.
//
// llama.cpp repeatedly merges the adjacent pair whose concatenation is the
// highest-scoring token (leftmost on ties); Hugging Face's BPE merges the
// pair of lowest merge rank (leftmost on ties). A token made by the merge of
// rank r therefore scores -r (its lowest rank if several merges make it), so
// both pick the same pair at every step. Tokens no merge makes — single
// characters, bytes, specials — score 0 when they have one character (they
// are never the result of a pair) and far below any merge otherwise, so
// llama.cpp forms them only when nothing else applies. This is the order
// SentencePiece itself scores its BPE pieces in, from which these merges
// were derived.
func spmScores(t *Tokenizer, merges [][2]string, index map[string]int32) []float32 {
	const unreachable = -1e9
	scores := make([]float32, len(t.Tokens))
	set := make([]bool, len(t.Tokens))
	for r, m := range merges {
		id, ok := index[m[0]+m[1]]
		if !ok || set[id] {
			continue
		}
		scores[id] = -float32(r)
		set[id] = true
	}
	for id, tok := range t.Tokens {
		if set[id] || t.Types[id] != TokenNormal && t.Types[id] != TokenUserDefined {
			continue
		}
		if n := len([]rune(tok)); n > 1 {
			scores[id] = unreachable
		}
	}
	return scores
}

// setSpecials sets the special ids and add_bos/add_eos. Sources, first wins:
// tokenizer_config.json's bos_token etc. (token text), then
// generation_config.json and config.json (ids); the SPM unknown token also
// comes from model.unk_token. add_bos_token/add_eos_token come from
// tokenizer_config.json, else from the post-processor template (Llama-3
// adds its BOS only there).
func (t *Tokenizer) setSpecials(tj *tokenizerJSON, cfg *tokenizerConfig, extra []idsFile, index map[string]int32) error {
	dst := map[string]*int32{"bos": &t.BOS, "eos": &t.EOS, "unk": &t.UNK, "pad": &t.PAD}
	if cfg != nil {
		for _, typ := range []string{"bos", "eos", "unk", "pad"} {
			s, ok := cfg.specials[typ]
			if !ok {
				continue
			}
			id, ok := index[s]
			if !ok {
				return fmt.Errorf("hf: %s: %s_token %q is not in the vocabulary", cfg.path, typ, s)
			}
			*dst[typ] = id
		}
	}
	if t.UNK == NoToken && tj.Model.UnkToken != nil {
		id, ok := index[*tj.Model.UnkToken]
		if !ok {
			return fmt.Errorf("hf: %s: model.unk_token %q is not in the vocabulary", tj.path, *tj.Model.UnkToken)
		}
		t.UNK = id
	}
	for _, f := range extra {
		for _, typ := range []string{"bos", "eos", "pad"} {
			id, ok := f.ids[typ]
			if !ok || *dst[typ] != NoToken {
				continue
			}
			if id < 0 || id >= int64(len(t.Tokens)) {
				return fmt.Errorf("hf: %s: %s_token_id %d is outside the vocabulary (%d tokens)", f.path, typ, id, len(t.Tokens))
			}
			*dst[typ] = int32(id)
		}
	}
	if t.Model == ModelSPM && t.UNK != NoToken && t.Types[t.UNK] != TokenByte {
		t.Types[t.UNK] = TokenUnknown
	}

	before, after := tj.template()
	if cfg != nil && cfg.AddBOS != nil {
		t.AddBOS = *cfg.AddBOS
	} else {
		t.AddBOS = t.BOS != NoToken && len(before) > 0 && index[before[0]] == t.BOS
	}
	if cfg != nil && cfg.AddEOS != nil {
		t.AddEOS = *cfg.AddEOS
	} else {
		t.AddEOS = t.EOS != NoToken && len(after) > 0 && index[after[len(after)-1]] == t.EOS
	}
	// A template BOS that tokenizer_config.json does not name (Llama-3 names
	// it, but a file may not) is still the BOS the tokenizer adds.
	if t.BOS == NoToken && len(before) > 0 && (cfg == nil || cfg.AddBOS == nil) {
		if id, ok := index[before[0]]; ok {
			t.BOS, t.AddBOS = id, true
		}
	}
	return nil
}
