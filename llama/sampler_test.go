package llama

import (
	"math"
	"regexp"
	"slices"
	"testing"
)

// TestGrammarSamplingIsRestrictedSoftmax checks the grammar fast path (draw
// without the grammar, keep the token if the grammar accepts it, otherwise redraw
// from the grammar-filtered logits): over many seeds the first token must follow
// softmax(logits) restricted to the tokens the grammar allows, and never be a
// token it forbids.
func TestGrammarSamplingIsRestrictedSoftmax(t *testing.T) {
	m := loadStories(t)
	c, err := m.NewContext(ContextOptions{NCtx: 128})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	toks, err := m.Tokenize("Once upon a time, there was a little girl named Lily. She", TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i, tok := range toks {
		b.Add(tok, i, 0, i == len(toks)-1)
	}
	if err := c.Decode(&b); err != nil {
		t.Fatal(err)
	}
	row := len(toks) - 1
	logits, err := c.Logits(row)
	if err != nil {
		t.Fatal(err)
	}
	// A first token is allowed when its text can start " " [a-k] [a-z]*.
	const grammar = `root ::= " " [a-k] [a-z]*`
	allowed := regexp.MustCompile(`^ ([a-k][a-z]*)?$`)
	// A high temperature spreads the allowed mass over many tokens, so that a
	// fallback that favoured some of them would show.
	const temp = 2.5
	want := make([]float64, len(logits))
	var zValid, zAll, maxValid float64
	for tok, l := range logits {
		p := math.Exp(float64(l) / temp)
		zAll += p
		if allowed.Match(m.TokenPiece(Token(tok), false)) {
			want[tok] = p
			zValid += p
			maxValid = max(maxValid, p)
		}
	}
	// Both paths must be exercised: the unconstrained draw is often allowed and
	// often not.
	if mass := zValid / zAll; mass < 0.05 || mass > 0.95 {
		t.Fatalf("allowed probability mass %.3f: pick another grammar so both paths run", mass)
	}
	if top := maxValid / zValid; top > 0.5 {
		t.Fatalf("one allowed token has %.2f of the allowed mass: too peaked to tell samplers apart", top)
	}
	const n = 4000
	got := make([]float64, len(logits))
	for seed := 1; seed <= n; seed++ {
		s, err := m.newSampler(SamplingOptions{Temperature: temp, Seed: uint32(seed), Grammar: grammar})
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.sample(c, row)
		s.free()
		if err != nil {
			t.Fatal(err)
		}
		if want[tok] == 0 {
			t.Fatalf("seed %d drew %q, which the grammar forbids", seed, m.TokenPiece(tok, false))
		}
		got[tok]++
	}
	tvd := 0.0
	for tok := range want {
		tvd += math.Abs(got[tok]/n - want[tok]/zValid)
	}
	tvd /= 2
	// Sampling error alone gives ~0.02 here; drawing from the unrestricted softmax
	// and renormalising afterwards would not pass, nor would a greedy fallback.
	if tvd > 0.05 {
		t.Fatalf("total variation distance %.3f between the drawn and the restricted distribution", tvd)
	}
	t.Logf("allowed mass %.3f, top allowed token %.3f of it, TVD %.4f over %d draws", zValid/zAll, maxValid/zValid, tvd, n)
}

// TestEngineSampledBatchedEqualsSequential runs seeded, grammar-constrained
// sampling for 8 requests one after another and all at once: the engine samples
// the rows of a batch concurrently, and that must not change any token.
func TestEngineSampledBatchedEqualsSequential(t *testing.T) {
	m := loadStories(t)
	const grammar = `root ::= (" " [a-z]+)+ "."`
	words := regexp.MustCompile(`^( [a-z]+)+\.?$`)
	reqs := make([]Request, len(storyPrompts))
	for i, p := range storyPrompts {
		reqs[i] = Request{Prompt: p, MaxTokens: 32,
			Sampling: SamplingOptions{Temperature: 0.9, TopK: 40, Seed: uint32(100 + i), Grammar: grammar}}
	}
	want := generateEach(t, m, reqs)
	par, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 2048, NSeqMax: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer par.Close()
	got := generateAll(t, par, reqs, false)
	if t.Failed() {
		return
	}
	for i := range reqs {
		if !words.MatchString(want[i].Text) {
			t.Errorf("prompt %q: %q does not follow the grammar", storyPrompts[i], want[i].Text)
		}
		if !slices.Equal(got[i].Tokens, want[i].Tokens) {
			t.Errorf("prompt %q: batched tokens differ:\n got %q\nwant %q", storyPrompts[i], got[i].Text, want[i].Text)
		}
	}
}
