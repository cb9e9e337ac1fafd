// Package modelgen writes small, deterministic GGUF models and LoRA adapters
// in pure Go, for tests, benchmarks and offline demos of the llama binding.
//
// Every output file is a byte-for-byte deterministic function of its
// configuration (including the seed): random numbers come from math/rand/v2
// PCG generators seeded per tensor, floats are produced with exact integer
// arithmetic and explicitly rounded float operations, and nothing depends on
// map iteration order.
package modelgen

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
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

// spaceMarker is the SentencePiece word-boundary character "▁" (U+2581):
// llama.cpp's SPM tokenizer replaces spaces with it and prefixes the text
// with it.
const spaceMarker = "\u2581"

// Vocab is a tokenizer vocabulary in the form llama.cpp stores it:
// tokenizer.ggml.tokens, .scores and .token_type, plus the special ids.
type Vocab struct {
	Tokens []string
	Scores []float32
	Types  []int32
	// BOS, EOS and UNK are the ids of the begin/end-of-sequence and unknown
	// tokens.
	BOS, EOS, UNK int32
}

// Len returns the number of tokens.
func (v Vocab) Len() int { return len(v.Tokens) }

// ID returns the id of the token with text tok, or -1.
func (v Vocab) ID(tok string) int32 {
	for i, t := range v.Tokens {
		if t == tok {
			return int32(i)
		}
	}
	return -1
}

// Validate checks what llama.cpp requires of a vocabulary: non-empty, the
// three slices of equal length, unique non-empty token texts, and special ids
// in range.
func (v Vocab) Validate() error {
	n := len(v.Tokens)
	if n == 0 {
		return errors.New("modelgen: empty vocabulary")
	}
	if len(v.Scores) != n || len(v.Types) != n {
		return fmt.Errorf("modelgen: vocabulary has %d tokens, %d scores and %d types", n, len(v.Scores), len(v.Types))
	}
	seen := make(map[string]int, n)
	for i, t := range v.Tokens {
		if t == "" {
			return fmt.Errorf("modelgen: token %d is empty", i)
		}
		if j, ok := seen[t]; ok {
			return fmt.Errorf("modelgen: tokens %d and %d are both %q", j, i, t)
		}
		seen[t] = i
	}
	for _, s := range []struct {
		name string
		id   int32
	}{{"BOS", v.BOS}, {"EOS", v.EOS}, {"UNK", v.UNK}} {
		if s.id < 0 || int(s.id) >= n {
			return fmt.Errorf("modelgen: %s id %d out of range [0, %d)", s.name, s.id, n)
		}
	}
	return nil
}

// SPMVocab builds a SentencePiece-style vocabulary for llama.cpp's "llama"
// (SPM) tokenizer:
//
//   - 0 "<unk>" (unknown), 1 "<s>" and 2 "</s>" (control): the ids llama.cpp
//     assumes for SPM models;
//   - 3..258: the byte-fallback tokens "<0x00>".."<0xFF>" (type byte), so any
//     text can be tokenized and the newline token (<0x0A>) exists;
//   - "▁" and every printable ASCII character, so ordinary text does not
//     fall back to bytes; then any other character used in words;
//   - for each word w (split on white space, in the given order, duplicates
//     skipped): every prefix of "▁w" and of "w" with at least two
//     characters.
//
// Why prefixes: the SPM tokenizer in llama-vocab.cpp starts from single
// characters and repeatedly merges the adjacent pair whose concatenation is
// a token with the highest score. A merge can only produce a token that
// exists, so a word is reachable only if a chain of intermediate pieces
// exists. With all prefixes present the leftmost piece of a word can always
// absorb its neighbour, so every listed word (after a space or at the start
// of the text, as "▁w", or glued to a previous piece, as "w") becomes exactly
// one token.
//
// Scores: special and byte tokens score 0; every other piece scores its
// length in characters, so longer pieces win merges (llama.cpp prefers the
// higher score).
func SPMVocab(words []string) Vocab {
	b := newVocabBuilder()
	b.add("<unk>", 0, TokenUnknown)
	b.add("<s>", 0, TokenControl)
	b.add("</s>", 0, TokenControl)
	for c := 0; c < 256; c++ {
		b.add(fmt.Sprintf("<0x%02X>", c), 0, TokenByte)
	}
	b.piece(spaceMarker)
	for c := byte(0x21); c < 0x7f; c++ {
		b.piece(string(c))
	}
	var split []string
	for _, w := range words {
		split = append(split, strings.Fields(w)...)
	}
	// Characters first, so single characters get low ids as in real
	// vocabularies; control characters are left to byte fallback.
	for _, w := range split {
		for _, r := range w {
			if unicode.IsPrint(r) {
				b.piece(string(r))
			}
		}
	}
	for _, w := range split {
		b.prefixes(spaceMarker + w)
		b.prefixes(w)
	}
	return Vocab{Tokens: b.tokens, Scores: b.scores, Types: b.types, BOS: 1, EOS: 2, UNK: 0}
}

// Pad returns a copy of v extended to exactly n tokens with generated
// lower-case pieces ("aa", "▁aa", "ab", "▁ab", ..., then three letters), all
// normal tokens scored by length, skipping pieces already present. It is used
// to reach a realistic vocabulary size (e.g. 32000) for benchmarks. It
// returns an error if v already has more than n tokens.
func (v Vocab) Pad(n int) (Vocab, error) {
	if n < len(v.Tokens) {
		return Vocab{}, fmt.Errorf("modelgen: cannot pad a %d-token vocabulary to %d", len(v.Tokens), n)
	}
	b := newVocabBuilder()
	for i, t := range v.Tokens {
		b.add(t, v.Scores[i], v.Types[i])
	}
	for length := 2; len(b.tokens) < n; length++ {
		letters := make([]byte, length)
		for i := range letters {
			letters[i] = 'a'
		}
		for len(b.tokens) < n {
			s := string(letters)
			b.piece(s)
			if len(b.tokens) < n {
				b.piece(spaceMarker + s)
			}
			// Next string in base-26 order; stop after "zz...z".
			i := length - 1
			for i >= 0 && letters[i] == 'z' {
				letters[i] = 'a'
				i--
			}
			if i < 0 {
				break
			}
			letters[i]++
		}
	}
	out := Vocab{Tokens: b.tokens, Scores: b.scores, Types: b.types, BOS: v.BOS, EOS: v.EOS, UNK: v.UNK}
	return out, nil
}

// vocabBuilder appends unique tokens in insertion order; the map is only a
// membership set, never iterated, so the order stays deterministic.
type vocabBuilder struct {
	tokens []string
	scores []float32
	types  []int32
	seen   map[string]bool
}

func newVocabBuilder() *vocabBuilder {
	return &vocabBuilder{seen: map[string]bool{}}
}

func (b *vocabBuilder) add(tok string, score float32, typ int32) {
	if tok == "" || b.seen[tok] {
		return
	}
	b.seen[tok] = true
	b.tokens = append(b.tokens, tok)
	b.scores = append(b.scores, score)
	b.types = append(b.types, typ)
}

// piece adds a normal token scored by its length in characters.
func (b *vocabBuilder) piece(tok string) {
	b.add(tok, float32(utf8.RuneCountInString(tok)), TokenNormal)
}

// prefixes adds every prefix of s with at least two characters.
func (b *vocabBuilder) prefixes(s string) {
	n := 0
	for i := range s {
		if n >= 2 {
			b.piece(s[:i])
		}
		n++
	}
	if n >= 2 {
		b.piece(s)
	}
}

// BasicWords returns a small English word list that covers common prose and
// the vocabulary of FireAct/ReAct agent traces (Thought, Action,
// Observation, search, finish, ...). It returns a new slice on every call.
func BasicWords() []string {
	return strings.Fields(`the a an and or of to in on at for with by from as is are was were be been
		it this that these those he she they we you I his her their our your its not no yes
		what which who when where why how there here then than so if but all any some one two three
		do does did done have has had can could will would should may might must
		say said get got make made go went know think see look find found give take use
		time year day people man woman world life hand part place case week number question answer
		Thought Action Observation Final Answer Question search lookup finish calculate result
		tool tools call input output name born city country capital population river
		Once upon there was little girl boy named Lily Tim big small happy sad dog cat ball
		park tree sun went play played wanted mom friend fun together day`)
}
