package improve

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fireact/fireact/llama"
)

// stories260K is karpathy's tiny TinyStories llama: a real GGUF with a real
// SPM tokenizer.
const stories260K = "../../shared/data/models/stories260K.gguf"

// TestKCopiesSharePromptKV checks what sampling k trajectories per question
// relies on: k requests with one prompt, in flight together on the engine
// (different seeds, temperature 0.8), decode the prompt once — the first
// copy decodes it, the others wait for it and copy its cells, decoding only
// their last prompt token for its logits — where the engine without prefix
// reuse decodes it k times. It logs the wall time of both.
func TestKCopiesSharePromptKV(t *testing.T) {
	m, err := llama.LoadModel(stories260K, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompt := strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ", 8)
	toks, err := m.Tokenize(prompt, llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(toks)
	const k = 4
	run := func(noReuse bool) (llama.EngineStats, time.Duration, []string) {
		e, err := llama.NewEngine(m, llama.EngineOptions{PerRequest: n + 64, NoPrefixReuse: noReuse,
			Context: llama.ContextOptions{NSeqMax: k, Threads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		texts := make([]string, k)
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < k; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.Generate(context.Background(), llama.Request{Prompt: prompt, MaxTokens: 16,
					Sampling: llama.SamplingOptions{Temperature: 0.8, Seed: uint32(i + 1)}})
				if err != nil {
					t.Error(err)
					return
				}
				texts[i] = r.Text
			}()
		}
		wg.Wait()
		return e.Stats(), time.Since(start), texts
	}
	shared, tShared, texts := run(false)
	alone, tAlone, _ := run(true)
	t.Logf("%d copies of a %d-token prompt: decoded %d prompt tokens (%d reused) in %s with prefix reuse; %d in %s without",
		k, n, shared.PromptDecoded, shared.PromptReused, tShared.Round(time.Microsecond), alone.PromptDecoded, tAlone.Round(time.Microsecond))
	if shared.PromptTokens != int64(k*n) || shared.PromptDecoded > int64(n+k-1) {
		t.Errorf("with prefix reuse: %d prompt tokens submitted, %d decoded; want %d submitted and at most %d decoded",
			shared.PromptTokens, shared.PromptDecoded, k*n, n+k-1)
	}
	if alone.PromptDecoded != int64(k*n) {
		t.Errorf("without prefix reuse: %d prompt tokens decoded, want %d", alone.PromptDecoded, k*n)
	}
	distinct := map[string]bool{}
	for _, s := range texts {
		distinct[s] = true
	}
	if len(distinct) < 2 {
		t.Errorf("the %d copies sampled with different seeds all wrote %q", k, texts[0])
	}
}
