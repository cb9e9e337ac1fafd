package llama

import (
	"fmt"
	"math"
)

// ScoreTokens returns log p(tokens[i] | tokens[:i]) for every i >= 1 (so len-1
// values), decoding tokens as sequence 0 of c from an empty cache. tokens must fit
// the context; the first token (usually BOS) is only context.
func (c *Context) ScoreTokens(tokens []Token) ([]float32, error) {
	if c.c == nil {
		return nil, ErrClosed
	}
	if len(tokens) < 2 {
		return nil, fmt.Errorf("llama: score: need at least 2 tokens, got %d", len(tokens))
	}
	if len(tokens) > c.nCtx {
		return nil, fmt.Errorf("llama: score: %d tokens exceed the context (%d)", len(tokens), c.nCtx)
	}
	c.SeqRemove(0, -1, -1)
	out := make([]float32, 0, len(tokens)-1)
	var b Batch
	for start := 0; start < len(tokens); start += c.nBatch {
		end := min(start+c.nBatch, len(tokens))
		b.Reset()
		var rows []int32
		var targets []Token
		for i := start; i < end; i++ {
			want := i+1 < len(tokens)
			b.Add(tokens[i], i, 0, want)
			if want {
				rows = append(rows, int32(i-start))
				targets = append(targets, tokens[i+1])
			}
		}
		if err := c.Decode(&b); err != nil {
			return nil, fmt.Errorf("llama: score: %w", err)
		}
		lp, _, err := c.TokenLogProbs(rows, targets)
		if err != nil {
			return nil, fmt.Errorf("llama: score: %w", err)
		}
		out = append(out, lp...)
	}
	c.SeqRemove(0, -1, -1)
	return out, nil
}

// PerplexityResult summarises a perplexity evaluation.
type PerplexityResult struct {
	Perplexity float64 // exp(mean NLL)
	MeanNLL    float64 // nats per scored token
	Tokens     int     // scored tokens
	Windows    int     // context windows used
}

// Perplexity scores text in consecutive windows of at most the context size,
// as llama.cpp's perplexity tool reads a text: when the vocabulary adds BOS
// (add_bos_token), each window starts with BOS and every token of the text is
// scored once; when it does not (Qwen, SmolLM), nothing is prepended, the first
// token of the text is only context, and each later window starts with the last
// token of the one before, so every other token is scored exactly once. For
// texts shorter than the context this is the exact perplexity; for longer ones
// the start of each window sees less context. (llama-perplexity also skips the
// first half of each window's scores; we score every token, which is the exact
// perplexity of texts that fit.)
func (c *Context) Perplexity(text string) (PerplexityResult, error) {
	var r PerplexityResult
	toks, err := c.m.Tokenize(text, TokenizeOptions{AddSpecial: false})
	if err != nil {
		return r, err
	}
	info := c.m.Info()
	if len(toks) == 0 {
		return r, fmt.Errorf("llama: perplexity: the text has no tokens")
	}
	if info.AddBOS && info.BOS < 0 {
		return r, fmt.Errorf("llama: perplexity: the vocabulary adds BOS but has no BOS token")
	}
	if !info.AddBOS && len(toks) < 2 {
		return r, fmt.Errorf("llama: perplexity: the text has one token; without BOS there is nothing to score")
	}
	var sum float64
	score := func(w []Token) error {
		lp, err := c.ScoreTokens(w)
		if err != nil {
			return err
		}
		for _, v := range lp {
			sum -= float64(v)
		}
		r.Tokens += len(lp)
		r.Windows++
		return nil
	}
	if info.AddBOS {
		win := c.nCtx - 1
		for start := 0; start < len(toks); start += win {
			end := min(start+win, len(toks))
			if err := score(append([]Token{info.BOS}, toks[start:end]...)); err != nil {
				return r, err
			}
		}
	} else {
		for start := 0; start+1 < len(toks); start += c.nCtx - 1 {
			end := min(start+c.nCtx, len(toks))
			if err := score(toks[start:end]); err != nil {
				return r, err
			}
		}
	}
	r.MeanNLL = sum / float64(r.Tokens)
	r.Perplexity = math.Exp(r.MeanNLL)
	return r, nil
}
