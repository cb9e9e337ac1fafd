package serve

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// BenchmarkServeCompletions measures the server end to end with the go-openai
// client: short greedy completions (16 tokens) from 1, 8 and 32 concurrent
// clients against the tiny model on an engine with 8 slots. It reports
// requests per second and the p50 and p99 request latency. Each iteration
// sends 64 requests, so `-benchtime 1x` still gives stable percentiles.
func BenchmarkServeCompletions(b *testing.B) {
	f := newFixture(b, nil)
	cfg := openai.DefaultConfig("")
	cfg.BaseURL = f.url + "/v1"
	// Enough idle connections for every client: the default of 2 per host would
	// make the benchmark measure TCP handshakes.
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c := openai.NewClientWithConfig(cfg)
	ctx := context.Background()
	models := []string{"tiny", "tiny+a", "tiny+b"}
	request := func(i int) openai.CompletionRequest {
		return openai.CompletionRequest{Model: models[i%len(models)], MaxTokens: 16,
			Prompt: fmt.Sprintf("Question %d: which film did the director make first? Thought:", i)}
	}
	// Warm up the engine (graph allocation) outside the measurement.
	if _, err := c.CreateCompletion(ctx, request(0)); err != nil {
		b.Fatal(err)
	}
	const perIter = 64
	for _, clients := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var (
				mu        sync.Mutex
				latencies []time.Duration
			)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				next := make(chan int, perIter)
				for i := range perIter {
					next <- i
				}
				close(next)
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() {
						for i := range next {
							t0 := time.Now()
							if _, err := c.CreateCompletion(ctx, request(i)); err != nil {
								b.Error(err)
								return
							}
							d := time.Since(t0)
							mu.Lock()
							latencies = append(latencies, d)
							mu.Unlock()
						}
					})
				}
				wg.Wait()
			}
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(latencies)
			pct := func(p float64) float64 {
				return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(0, "ns/op") // per-iteration time is meaningless here
		})
	}
}
