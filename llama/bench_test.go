package llama

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fireact/fireact/llama/modelgen"
)

// Benchmarks report tokens per second and ratios against a baseline measured in
// the same run. Run them with `make bench` (or go test -bench . -benchtime 1x).

// benchModels returns stories260K plus a ~110M-parameter llama made in code, in
// F32, Q8_0 and Q4_0 (quantized with llama.cpp's quantizer). Built once per process.
var benchOnce sync.Once
var benchPaths map[string]string
var benchErr error

func benchModelPaths(b *testing.B) map[string]string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fireact-bench-")
		if err != nil {
			benchErr = err
			return
		}
		v, err := modelgen.SPMVocab(modelgen.BasicWords()).Pad(32000)
		if err != nil {
			benchErr = err
			return
		}
		f32 := filepath.Join(dir, "m110-f32.gguf")
		cfg := modelgen.LlamaConfig{Name: "bench-110M", Vocab: v, NEmbd: 768, NLayer: 12, NHead: 12, NHeadKV: 12, NFF: 2048, NCtx: 2048, TiedOutput: true, Seed: 1}
		if benchErr = modelgen.WriteLlama(f32, cfg); benchErr != nil {
			return
		}
		benchPaths = map[string]string{"stories260K": storiesPath, "m110-f32": f32}
		for _, q := range []string{"q8_0", "q4_0"} {
			p := filepath.Join(dir, "m110-"+q+".gguf")
			if benchErr = Quantize(f32, p, q, 0); benchErr != nil {
				return
			}
			benchPaths["m110-"+q] = p
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchPaths
}

func benchLoad(b *testing.B, name string) *Model {
	m, err := LoadModel(benchModelPaths(b)[name], ModelOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func benchPrompt(m *Model, n int) []Token {
	text := strings.Repeat("Once upon a time, there was a little girl who liked to search for answers. ", 64)
	toks, _ := m.Tokenize(text, TokenizeOptions{AddSpecial: true})
	return toks[:n]
}

var benchNames = []string{"stories260K", "m110-f32", "m110-q8_0", "m110-q4_0"}

// BenchmarkPrompt measures prompt processing: one 256-token batch.
func BenchmarkPrompt(b *testing.B) {
	for _, name := range benchNames {
		b.Run(name, func(b *testing.B) {
			m := benchLoad(b, name)
			c, err := m.NewContext(ContextOptions{NCtx: 512, NBatch: 256})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			toks := benchPrompt(m, 256)
			var batch Batch
			for i, t := range toks {
				batch.Add(t, i, 0, i == len(toks)-1)
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				c.ClearKV()
				if err := c.Decode(&batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(toks))/time.Since(start).Seconds(), "prompt-tok/s")
		})
	}
}

// BenchmarkGenerate measures single-sequence greedy generation through the engine
// and, as its baseline, the same tokens from a plain C decode loop; "overhead-ratio"
// is engine tok/s over raw C tok/s (goal >= 0.97).
func BenchmarkGenerate(b *testing.B) {
	const nGen = 128
	for _, name := range benchNames {
		b.Run(name, func(b *testing.B) {
			m := benchLoad(b, name)
			prompt := benchPrompt(m, 16)
			raw, err := m.NewContext(ContextOptions{NCtx: 512})
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 512, NSeqMax: 1}, NoPrefixReuse: true})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			// Interleaved runs, best of each: the ratio is robust to other load.
			rawDur, engDur := time.Duration(1<<62), time.Duration(1<<62)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for rep := 0; rep < 3; rep++ {
					want, d, err := raw.RawGreedy(prompt, nGen)
					if err != nil {
						b.Fatal(err)
					}
					rawDur = min(rawDur, d)
					r, err := e.Generate(context.Background(), Request{Tokens: prompt, MaxTokens: nGen, IgnoreEOS: true})
					if err != nil {
						b.Fatal(err)
					}
					// GenTime starts at the first sampled token: nGen-1 decodes, like
					// the raw loop's nGen decodes after the prompt's logits.
					engDur = min(engDur, r.GenTime)
					if !slices.Equal(r.Tokens[:nGen-1], want[:nGen-1]) {
						b.Fatalf("engine and raw loop disagree")
					}
				}
			}
			rawTPS := float64(nGen) / rawDur.Seconds()
			engTPS := float64(nGen-1) / engDur.Seconds()
			b.ReportMetric(rawTPS, "raw-tok/s")
			b.ReportMetric(engTPS, "engine-tok/s")
			b.ReportMetric(engTPS/rawTPS, "overhead-ratio")
		})
	}
}

// BenchmarkBatched8 compares 8 concurrent requests in one engine against the same
// 8 served one after another ("speedup" = sequential time / batched time).
func BenchmarkBatched8(b *testing.B) {
	const nGen = 64
	for _, name := range []string{"stories260K", "m110-q8_0"} {
		b.Run(name, func(b *testing.B) {
			m := benchLoad(b, name)
			prompts := make([][]Token, 8)
			for i := range prompts {
				p := benchPrompt(m, 24+i)
				prompts[i] = p
			}
			e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 2048, NSeqMax: 8}, NoPrefixReuse: true})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			var seqDur, parDur time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				for _, p := range prompts {
					if _, err := e.Generate(context.Background(), Request{Tokens: p, MaxTokens: nGen, IgnoreEOS: true}); err != nil {
						b.Fatal(err)
					}
				}
				seqDur += time.Since(t0)
				t0 = time.Now()
				var wg sync.WaitGroup
				for _, p := range prompts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := e.Generate(context.Background(), Request{Tokens: p, MaxTokens: nGen, IgnoreEOS: true}); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				parDur += time.Since(t0)
			}
			total := float64(b.N * 8 * nGen)
			b.ReportMetric(total/seqDur.Seconds(), "seq-tok/s")
			b.ReportMetric(total/parDur.Seconds(), "batched-tok/s")
			b.ReportMetric(seqDur.Seconds()/parDur.Seconds(), "speedup")
		})
	}
}

// BenchmarkKVLayout serves 8 concurrent requests that share a 1,200-token prefix
// (as questions under one few-shot prompt do) with separate per-sequence KV
// streams (the engine's default) and with one unified buffer (the baseline), and
// reports generated tokens/s of each and their ratio.
func BenchmarkKVLayout(b *testing.B) {
	const nGen = 48
	m := benchLoad(b, "stories260K")
	prefix := benchPrompt(m, 1200)
	var tps [2]float64
	for k, unified := range []bool{false, true} {
		e, err := NewEngine(m, EngineOptions{Context: ContextOptions{NCtx: 8 * 2048, NSeqMax: 8, KVUnified: unified}})
		if err != nil {
			b.Fatal(err)
		}
		var dur time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			var wg sync.WaitGroup
			for r := 0; r < 8; r++ {
				p := append(append([]Token(nil), prefix...), Token(10+r+8*i))
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := e.Generate(context.Background(), Request{Tokens: p, MaxTokens: nGen, IgnoreEOS: true}); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
			dur += time.Since(t0)
		}
		e.Close()
		tps[k] = float64(b.N*8*nGen) / dur.Seconds()
	}
	b.ReportMetric(tps[0], "separate-tok/s")
	b.ReportMetric(tps[1], "unified-tok/s")
	b.ReportMetric(tps[0]/tps[1], "separate/unified")
}

// BenchmarkDecodeBatchScaling measures what batching can give on this machine:
// the time per token of one decode that advances 32 sequences by a token each,
// against a decode that advances one ("ceiling" = ms/token at 1 / at 32), with
// every sequence holding ctx tokens of KV. It bounds the speedup of any workload
// that keeps 32 sequences in flight, such as the agent benchmark. "gaps-cost" is
// the time of a decode over 16 sequences with even ids against 16 consecutive ones.
func BenchmarkDecodeBatchScaling(b *testing.B) {
	const nSeq = 32
	for _, ctxLen := range []int{16, 512} {
		b.Run(fmt.Sprintf("m110-q8_0/ctx%d", ctxLen), func(b *testing.B) {
			m := benchLoad(b, "m110-q8_0")
			c, err := m.NewContext(ContextOptions{NCtx: nSeq * 1024, NSeqMax: nSeq, FlashAttn: FlashAttnOn})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			prompt := benchPrompt(m, ctxLen)
			for at := 0; at < ctxLen; at += c.NBatch() {
				var batch Batch
				for i := at; i < min(ctxLen, at+c.NBatch()); i++ {
					batch.Add(prompt[i], i, 0, false)
				}
				if err := c.Decode(&batch); err != nil {
					b.Fatal(err)
				}
			}
			for s := 1; s < nSeq; s++ {
				c.SeqCopy(0, s, -1, -1)
			}
			decode := func(seqs []int) time.Duration {
				var batch Batch
				for _, s := range seqs {
					batch.Add(prompt[s%len(prompt)], ctxLen, s, true)
				}
				t0 := time.Now()
				if err := c.Decode(&batch); err != nil {
					b.Fatal(err)
				}
				d := time.Since(t0)
				for _, s := range seqs {
					c.SeqRemove(s, ctxLen, -1)
				}
				return d
			}
			var all, consecutive, alternating []int
			for s := 0; s < nSeq; s++ {
				all = append(all, s)
				if s < nSeq/2 {
					consecutive = append(consecutive, s)
					alternating = append(alternating, 2*s)
				}
			}
			var dOne, dAll, dCons, dAlt time.Duration
			for i := 0; i < b.N; i++ {
				dOne += decode(all[:1])
				dAll += decode(all)
				dCons += decode(consecutive)
				dAlt += decode(alternating)
			}
			perOne := dOne.Seconds() * 1000 / float64(b.N)
			perAll := dAll.Seconds() * 1000 / float64(b.N*nSeq)
			b.ReportMetric(perOne, "ms/token-1")
			b.ReportMetric(perAll, "ms/token-32")
			b.ReportMetric(perOne/perAll, "ceiling")
			// llama.cpp makes one pass over the weights per run of consecutive
			// sequence ids: what a decode with gaps costs (the engine bridges them).
			b.ReportMetric(dAlt.Seconds()/dCons.Seconds(), "gaps-cost")
		})
	}
}
