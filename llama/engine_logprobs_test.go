package llama

import (
	"math"
	"sync"
	"testing"
)

// TestEngineLogProbs checks the log-probabilities the engine records for
// sampled tokens against scoring the same tokens in a fresh context: for a
// greedy and a sampled request decoded together in one batch, each generated
// token's recorded value is log p(token | prompt, tokens before) under the
// model's own distribution, not under the sampler's (temperature) one.
func TestEngineLogProbs(t *testing.T) {
	m := loadStories(t)
	e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 1024, NSeqMax: 2, Threads: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	reqs := []Request{
		{Prompt: "Once upon a time, there was a little girl", MaxTokens: 24, LogProbs: true},
		{Prompt: "One day, Tom went to the park", MaxTokens: 24, LogProbs: true,
			Sampling: SamplingOptions{Temperature: 1.3, Seed: 3}},
		{Prompt: "Lily saw a big dog", MaxTokens: 8},
	}
	res := make([]*Result, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.Generate(t.Context(), reqs[i])
			if err != nil {
				t.Error(err)
				return
			}
			res[i] = r
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if res[2].LogProbs != nil {
		t.Errorf("a request without LogProbs got %d of them", len(res[2].LogProbs))
	}
	c, err := m.NewContext(ContextOptions{NCtx: 256, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, r := range res[:2] {
		if len(r.LogProbs) != len(r.Tokens) || len(r.Tokens) == 0 {
			t.Fatalf("request %d: %d log-probabilities for %d tokens", i, len(r.LogProbs), len(r.Tokens))
		}
		prompt, err := m.Tokenize(reqs[i].Prompt, TokenizeOptions{AddSpecial: true})
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.ScoreTokens(append(prompt, r.Tokens...))
		if err != nil {
			t.Fatal(err)
		}
		want = want[len(prompt)-1:]
		below := 0
		for k, lp := range r.LogProbs {
			if lp > 0 || math.Abs(float64(lp-want[k])) > 1e-3 {
				t.Errorf("request %d token %d: log p %.5f, scoring the same tokens gives %.5f", i, k, lp, want[k])
			}
			if lp < -1 {
				below++
			}
		}
		// The sampled request at temperature 1.3 draws tokens the model finds
		// unlikely; were its values those of the reshaped distribution, or all
		// near 0, this would not tell.
		if i == 1 && below == 0 {
			t.Errorf("sampled request: no token below log p -1 (%v); the test proves little", r.LogProbs)
		}
	}
}
