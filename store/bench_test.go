package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchmarkInserts inserts b.N episodes of 5 steps each from the given number
// of goroutines and reports episodes/s.
func benchmarkInserts(b *testing.B, writers int) {
	ctx := context.Background()
	s := openTemp(b)
	r := Run{Kind: KindEval, Task: "bench", Split: "dev"}
	if _, err := s.CreateRun(ctx, &r); err != nil {
		b.Fatal(err)
	}
	qs := make([]Question, b.N)
	for i := range qs {
		qs[i] = Question{Task: "bench", Split: "dev", Index: i, Text: fmt.Sprint("q", i)}
	}
	if err := s.UpsertQuestions(ctx, qs); err != nil {
		b.Fatal(err)
	}
	steps := testSteps(5)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				ep := Episode{RunID: r.ID, QuestionID: qs[i].ID, Turns: len(steps)}
				if err := s.InsertEpisode(ctx, &ep, steps); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "episodes/s")
}

// BenchmarkEpisodeInsert8Writers measures episode inserts/s under 8 concurrent
// writers.
func BenchmarkEpisodeInsert8Writers(b *testing.B) { benchmarkInserts(b, 8) }

// BenchmarkEpisodeInsert1Writer is the single-writer baseline for the ratio.
func BenchmarkEpisodeInsert1Writer(b *testing.B) { benchmarkInserts(b, 1) }
