package finetune

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/fireact/fireact/llama"
)

// SplitValidation splits n examples into training and validation indices
// (each in increasing order). val below 1 is a fraction of n (at least one
// example when val > 0 and n > 1), val of 1 or more a count; at least one
// example always stays for training. The choice depends only on n, val and seed.
func SplitValidation(n int, val float64, seed uint64) (train, valid []int) {
	k := 0
	switch {
	case val <= 0 || n < 2:
	case val < 1:
		k = max(1, int(math.Round(val*float64(n))))
	default:
		k = int(val)
	}
	k = min(k, n-1)
	k = max(k, 0)
	// Stream 0 of the seed is the split; epochs use streams 1, 2, ...
	perm := rand.New(rand.NewPCG(seed, 0)).Perm(n)
	valid = slices.Clone(perm[:k])
	train = slices.Clone(perm[k:])
	slices.Sort(valid)
	slices.Sort(train)
	return train, valid
}

// EpochOrder returns the training order of epoch (0-based): a permutation of
// train drawn from the seed and the epoch alone, so a resumed run sees the same
// order without saving generator state.
func EpochOrder(train []int, seed uint64, epoch int) []int {
	out := slices.Clone(train)
	rng := rand.New(rand.NewPCG(seed, uint64(epoch)+1))
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Pack groups examples, in the given order, into batches of at most maxTokens
// tokens: each batch takes the next examples while they fit (so the order is kept
// and the batches are a function of the order). An example longer than maxTokens
// gets a batch of its own; callers cut examples to the cutoff, which is at most
// maxTokens, so that does not happen in training.
func Pack(lengths []int, order []int, maxTokens int) [][]int {
	var out [][]int
	var cur []int
	n := 0
	for _, i := range order {
		l := lengths[i]
		if len(cur) > 0 && n+l > maxTokens {
			out = append(out, cur)
			cur, n = nil, 0
		}
		cur = append(cur, i)
		n += l
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Batch concatenates examples into one packed TrainBatch.
func Batch(exs []Example, idx []int) llama.TrainBatch {
	var b llama.TrainBatch
	for _, i := range idx {
		b.SeqStart = append(b.SeqStart, len(b.Tokens))
		b.Tokens = append(b.Tokens, exs[i].Tokens...)
		b.Target = append(b.Target, exs[i].Target...)
	}
	return b
}

// TextBlocks splits a text into training blocks for plain language modelling
// (pretraining, or adapting to a text): the text is tokenized once with BOS,
// and each block is BOS followed by the next blockTokens-1 tokens, every token
// after BOS scored. A last block with nothing to score is dropped.
func TextBlocks(m *llama.Model, text string, blockTokens int) ([]Example, error) {
	toks, err := m.Tokenize(text, llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		return nil, err
	}
	var lead []llama.Token
	if bos := m.Info().BOS; len(toks) > 0 && bos >= 0 && toks[0] == bos {
		lead, toks = toks[:1], toks[1:]
	}
	step := max(blockTokens-len(lead), 1)
	var out []Example
	for start := 0; start < len(toks); start += step {
		body := toks[start:min(start+step, len(toks))]
		ex := Example{Tokens: append(slices.Clone(lead), body...)}
		ex.Target = make([]bool, len(ex.Tokens))
		for i := 1; i < len(ex.Target); i++ {
			ex.Target[i] = true
		}
		if len(ex.Tokens) < 2 {
			continue
		}
		ex.Source = "text block " + itoa(len(out))
		out = append(out, ex)
	}
	return out, nil
}
