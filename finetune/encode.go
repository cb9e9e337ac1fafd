package finetune

import (
	"fmt"
	"strings"

	"github.com/fireact/fireact/llama"
)

// Example is one tokenized training sequence.
type Example struct {
	Tokens []llama.Token
	// Target marks the scored tokens (Target[0] is always false: the first token
	// has no prefix to be predicted from).
	Target []bool
	// Source names where the example came from ("episode 12", "text block 3"),
	// for error messages.
	Source string
	// Truncated reports that the example was cut to the cutoff length.
	Truncated bool
	// PieceWise reports that tokenizing the whole text could not be aligned with
	// its characters, so the segments were tokenized one by one (exact masks,
	// slightly different tokens at the segment borders than the whole text gets).
	PieceWise bool
}

// Scored returns the number of scored tokens.
func (e Example) Scored() int {
	n := 0
	for _, t := range e.Target {
		if t {
			n++
		}
	}
	return n
}

// EncodeOptions configure Encode.
type EncodeOptions struct {
	// TrainOnInputs scores every token after BOS (FireAct's exact recipe:
	// alpaca-lora with --train_on_inputs) instead of only the agent's.
	TrainOnInputs bool
	// NoEOS leaves out the end-of-sequence token appended (and scored) after the
	// text, for chat text whose turn end is already the stop signal.
	NoEOS bool
	// Cutoff truncates the example to this many tokens (0: no limit); the EOS is
	// lost with the tail, as in alpaca-lora.
	Cutoff int
}

// Encode tokenizes segments into an example with its loss mask. The whole text is
// tokenized at once (with the model's BOS), exactly as inference tokenizes a
// prompt, and each token's bytes are located in the text: a token is scored when
// any of its bytes lies in a scored segment. So a token that straddles a segment
// border is scored (Mistral's "▁Thought" after "[/INST]": the space is the
// template's, the word the agent's), because the model must produce it to write
// the scored text. The SPM space prefix llama.cpp adds at the start of the text
// and after each special token lies in no segment: a token holding only that
// space goes with the text it prefixes. When the tokens' bytes do not spell the
// text (a tokenizer that normalizes), it falls back to tokenizing segment by
// segment and concatenating.
func Encode(m *llama.Model, segs []Segment, o EncodeOptions) (Example, error) {
	text := joinSegments(segs)
	special := false
	for _, s := range segs {
		special = special || s.Special
	}
	// Scored-ness per byte of text.
	scored := make([]bool, len(text))
	off := 0
	for _, s := range segs {
		if s.Scored {
			for i := off; i < off+len(s.Text); i++ {
				scored[i] = true
			}
		}
		off += len(s.Text)
	}
	toks, err := m.Tokenize(text, llama.TokenizeOptions{AddSpecial: true, ParseSpecial: special})
	if err != nil {
		return Example{}, fmt.Errorf("finetune: tokenize: %w", err)
	}
	ex := Example{Tokens: toks, Target: make([]bool, len(toks))}
	bos := m.Info().BOS
	first := 0
	if len(toks) > 0 && bos >= 0 && m.Info().AddBOS && toks[0] == bos {
		first = 1
	}
	spans, ok := alignTokens(m, toks[first:], text)
	if ok {
		for i, sp := range spans {
			// A token with no bytes of the text (a lone SPM space prefix)
			// belongs to the text it prefixes.
			if sp[0] == sp[1] && sp[0] < len(scored) {
				ex.Target[first+i] = scored[sp[0]]
			}
			for j := sp[0]; j < sp[1]; j++ {
				if scored[j] {
					ex.Target[first+i] = true
					break
				}
			}
		}
	} else {
		ex, err = encodePieceWise(m, segs)
		if err != nil {
			return Example{}, err
		}
	}
	if o.TrainOnInputs {
		for i := range ex.Target {
			ex.Target[i] = i > 0
		}
	}
	if eos := m.Info().EOS; !o.NoEOS && eos >= 0 && (len(ex.Tokens) == 0 || ex.Tokens[len(ex.Tokens)-1] != eos) {
		ex.Tokens = append(ex.Tokens, eos)
		ex.Target = append(ex.Target, true)
	}
	if len(ex.Target) > 0 {
		ex.Target[0] = false
	}
	if o.Cutoff > 0 && len(ex.Tokens) > o.Cutoff {
		ex.Tokens, ex.Target, ex.Truncated = ex.Tokens[:o.Cutoff], ex.Target[:o.Cutoff], true
	}
	return ex, nil
}

// alignTokens returns each token's byte span [start, end) in text, or false when
// the tokens' pieces do not spell the text.
//
// The one byte llama.cpp adds that is in no segment is the SPM space prefix: a
// vocabulary with add_space_prefix (Llama-2, Mistral) tokenizes each run of
// plain text at the start of the text and after every special token as if it
// began with a space, as Hugging Face's Prepend normalizer does per segment. A
// token whose piece starts with such an added space gets the span of the rest of
// its piece (empty for a lone "▁").
func alignTokens(m *llama.Model, toks []llama.Token, text string) ([][2]int, bool) {
	prefix := addsSpacePrefix(m)
	spans := make([][2]int, len(toks))
	pos := 0
	for i, t := range toks {
		p := string(m.TokenPiece(t, true))
		// Where llama.cpp added a space, the fragment's first token starts
		// with it; the text's own space, if any, follows.
		if prefix && (i == 0 || m.IsSpecial(toks[i-1])) && !m.IsSpecial(t) && strings.HasPrefix(p, " ") {
			p = p[1:]
		}
		if !strings.HasPrefix(text[pos:], p) {
			return nil, false
		}
		spans[i] = [2]int{pos, pos + len(p)}
		pos += len(p)
	}
	return spans, pos == len(text)
}

// addsSpacePrefix reports whether llama.cpp prefixes plain text with a space:
// SPM vocabularies do unless tokenizer.ggml.add_space_prefix is false (Gemma).
func addsSpacePrefix(m *llama.Model) bool {
	if m.Info().VocabType != "spm" {
		return false
	}
	v, ok := m.File().Get("tokenizer.ggml.add_space_prefix")
	return !ok || v == true
}

// encodePieceWise tokenizes segment by segment: exact masks whatever the
// tokenizer does to the whole text.
func encodePieceWise(m *llama.Model, segs []Segment) (Example, error) {
	ex := Example{PieceWise: true}
	if bos := m.Info().BOS; bos >= 0 && m.Info().AddBOS {
		ex.Tokens = append(ex.Tokens, bos)
		ex.Target = append(ex.Target, false)
	}
	for _, s := range segs {
		toks, err := m.Tokenize(s.Text, llama.TokenizeOptions{ParseSpecial: s.Special})
		if err != nil {
			return Example{}, fmt.Errorf("finetune: tokenize: %w", err)
		}
		for _, t := range toks {
			ex.Tokens = append(ex.Tokens, t)
			ex.Target = append(ex.Target, s.Scored)
		}
	}
	return ex, nil
}
