package finetune

import (
	"bytes"
	"fmt"

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
// any of its bytes lies in a scored segment. When the tokens' bytes do not spell
// the text (a tokenizer that normalizes), it falls back to tokenizing segment by
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
	if len(toks) > 0 && bos >= 0 && toks[0] == bos {
		first = 1
	}
	spans, ok := alignTokens(m, toks[first:], text)
	if ok {
		for i, sp := range spans {
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
// the tokens' pieces do not spell the text. The SPM space prefix that llama.cpp
// adds before the first word is a byte of no segment: it gets an empty span at 0
// merged into the first token.
func alignTokens(m *llama.Model, toks []llama.Token, text string) ([][2]int, bool) {
	spans := make([][2]int, len(toks))
	var joined []byte
	for i, t := range toks {
		p := m.TokenPiece(t, true)
		spans[i] = [2]int{len(joined), len(joined) + len(p)}
		joined = append(joined, p...)
	}
	shift := 0
	switch {
	case bytes.Equal(joined, []byte(text)):
	case len(joined) == len(text)+1 && joined[0] == ' ' && string(joined[1:]) == text:
		shift = 1
	default:
		return nil, false
	}
	for i := range spans {
		spans[i][0] = max(spans[i][0]-shift, 0)
		spans[i][1] = max(spans[i][1]-shift, 0)
	}
	return spans, true
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
