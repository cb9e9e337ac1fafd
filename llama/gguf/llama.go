package gguf

import "strconv"

// Metadata keys whose type or length llama.cpp trusts. gguf.cpp parses any
// well-formed value for them, but llama.cpp then reads them through
// GGML_ASSERT-checked getters (abort on a wrong type) or raw pointers (out of
// bounds on a short array), so Read rejects them up front.
const (
	keyTokens      = "tokenizer.ggml.tokens"
	keyScores      = "tokenizer.ggml.scores"
	keyTokenType   = "tokenizer.ggml.token_type"
	keyMerges      = "tokenizer.ggml.merges"
	keyGeneralType = "general.type"
	keyArch        = "general.architecture"
	keyAdapterType = "adapter.type"
	keyLoRAAlpha   = "adapter.lora.alpha"
	keySplitNo     = "split.no"
)

// checkLlamaKeys validates the keys listed above:
//   - tokenizer.ggml.tokens must be an array of strings (gguf_get_arr_str
//     asserts) with unique entries (llama_vocab asserts that no two tokens
//     share a text; an empty token is renamed "[EMPTY_<i>]" first);
//   - tokenizer.ggml.scores, if present, an array of float32 and
//     tokenizer.ggml.token_type an array of int32, both exactly as long as the
//     token list (llama.cpp indexes them with the token id, unchecked);
//   - tokenizer.ggml.merges an array of strings;
//   - general.type, general.architecture and adapter.type strings and
//     adapter.lora.alpha a float32 (the LoRA loader reads them with asserting
//     getters);
//   - split.no a uint16.
func (r *reader) checkLlamaKeys(f *File, kvPos []int64) error {
	bad := func(key, want string) error {
		i := f.kvIndex[key]
		vt, arr, _ := f.KVs[i].Type()
		return r.errAt(kvPos[i], "key %q must be %s, got %s (llama.cpp aborts on this)", key, want, describeType(vt, arr))
	}
	scalar := map[string]struct {
		check func(any) bool
		want  string
	}{
		keyGeneralType: {func(v any) bool { _, ok := v.(string); return ok }, "a string"},
		keyArch:        {func(v any) bool { _, ok := v.(string); return ok }, "a string"},
		keyAdapterType: {func(v any) bool { _, ok := v.(string); return ok }, "a string"},
		keyLoRAAlpha:   {func(v any) bool { _, ok := v.(float32); return ok }, "a float32"},
		keySplitNo:     {func(v any) bool { _, ok := v.(uint16); return ok }, "a uint16"},
		keyMerges:      {func(v any) bool { _, ok := v.([]string); return ok }, "an array of strings"},
	}
	// Iterate over KVs (not the map) so the first bad key in file order is
	// reported, deterministically.
	for _, kv := range f.KVs {
		if c, ok := scalar[kv.Key]; ok && !c.check(kv.Value) {
			return bad(kv.Key, c.want)
		}
	}

	v, ok := f.kvIndex[keyTokens]
	if !ok {
		return nil
	}
	tokens, isStrings := f.KVs[v].Value.([]string)
	if !isStrings {
		return bad(keyTokens, "an array of strings")
	}
	seen := make(map[string]int, len(tokens))
	for i, t := range tokens {
		if t == "" {
			t = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		if j, dup := seen[t]; dup {
			return r.errAt(kvPos[v], "key %q: tokens %d and %d are both %q; llama.cpp aborts on duplicate tokens", keyTokens, j, i, t)
		}
		seen[t] = i
	}
	if i, ok := f.kvIndex[keyScores]; ok {
		s, isF32 := f.KVs[i].Value.([]float32)
		if !isF32 {
			return bad(keyScores, "an array of float32")
		}
		if len(s) != len(tokens) {
			return r.errAt(kvPos[i], "key %q has %d entries but there are %d tokens", keyScores, len(s), len(tokens))
		}
	}
	if i, ok := f.kvIndex[keyTokenType]; ok {
		s, isI32 := f.KVs[i].Value.([]int32)
		if !isI32 {
			return bad(keyTokenType, "an array of int32")
		}
		if len(s) != len(tokens) {
			return r.errAt(kvPos[i], "key %q has %d entries but there are %d tokens", keyTokenType, len(s), len(tokens))
		}
	}
	return nil
}
