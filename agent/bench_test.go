package agent

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
)

// benchCase is one configuration of the local-agent benchmark.
type benchCase struct {
	name      string
	model     func(testing.TB) string
	format    Format
	gpuLayers int
}

var (
	weightOnce sync.Once
	weightPath string
	weightErr  error
)

// weightModel writes, once per test binary, a model whose decode time goes mostly
// to its weights (110M parameters: 768 wide, 12 layers, 32k vocabulary, Q8_0),
// the regime of real 0.5-7B models, unlike the 64-wide tiny model whose time goes
// to attention.
func weightModel(tb testing.TB) string {
	tb.Helper()
	d := modelDir(tb)
	weightOnce.Do(func() {
		v, err := modelgen.SPMVocab(modelgen.BasicWords()).Pad(32000)
		if err != nil {
			weightErr = err
			return
		}
		weightPath = filepath.Join(d, "m110-q8_0.gguf")
		weightErr = modelgen.WriteLlama(weightPath, modelgen.LlamaConfig{Vocab: v, NEmbd: 768, NLayer: 12, NHead: 12, NHeadKV: 12, NFF: 2048,
			NCtx: 4096, WeightType: gguf.TypeQ8_0, EmbedType: gguf.TypeQ8_0, OutputType: gguf.TypeQ8_0, Seed: 1})
	})
	if weightErr != nil {
		tb.Fatalf("weight-dominated model: %v", weightErr)
	}
	return weightPath
}

// benchResult is one run of 32 questions.
type benchResult struct {
	elapsed time.Duration
	stats   llama.EngineStats
}

// benchRun answers 32 questions (ReAct, grammar so every turn parses) with conc
// of them in flight.
func benchRun(b *testing.B, bc benchCase, conc int, noReuse bool) benchResult {
	const n = 32
	m, err := llama.LoadModel(bc.model(b), llama.ModelOptions{GPULayers: bc.gpuLayers})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	eng, err := llama.NewEngine(m, llama.EngineOptions{NoPrefixReuse: noReuse,
		Context: llama.ContextOptions{NCtx: max(16384, 3072*conc), NSeqMax: conc, FlashAttn: llama.FlashAttnOn}})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	s := newStore(b)
	fillCorpus(b, s, "wiki", n)
	task := testTask(n)
	// Four turns keep the benchmark short.
	meth := ReAct()
	meth.MaxTurns = 4
	prompt := Prompt{Format: bc.format}
	if bc.format == FormatFewShot {
		prompt.FewShot = FewShotPrompt("hotpotqa", ReAct())
	}
	a := &Agent{LLM: &LocalLLM{Engine: eng}, Search: &Cache{Inner: &LocalSearch{Store: s, Corpus: "wiki"}, Store: s, Backend: "local:wiki"},
		Method: meth, Prompt: prompt,
		Sampling: Sampling{Temperature: 0.8, Seed: 11, MaxTokens: 64}, Grammar: true, MaxInvalid: 4}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	start := time.Now()
	rep, err := RunTask(context.Background(), RunSpec{Store: s, Task: task, Agent: a, Indices: idx, Concurrency: conc,
		Run: store.Run{Kind: store.KindEval, Task: task.Name(), Split: task.Split(), Method: "react"}})
	if err != nil || rep.Errors > 0 {
		eps, _ := s.Episodes(context.Background(), rep.Run.ID)
		for _, ep := range eps {
			if ep.Error != "" {
				b.Fatalf("run: %v (%d errors): %s", err, rep.Errors, ep.Error)
			}
		}
		b.Fatalf("run: %v (%d errors)", err, rep.Errors)
	}
	r := benchResult{elapsed: time.Since(start), stats: eng.Stats()}
	b.Logf("%s, %d in flight, prefix reuse %v: %v, %+v", bc.name, conc, !noReuse, r.elapsed.Round(time.Millisecond), r.stats)
	return r
}

// BenchmarkLocalAgent measures questions per minute with all 32 questions in
// flight against one at a time, and prompt tokens decoded per question with
// and without prefix reuse (goals: >= 3x and >= 80% fewer). "tiny-fewshot" is a
// 64-wide model under the 1.3k-token few-shot prompt, where attention over the
// prompt dominates; "m110-alpaca" is a weight-dominated Q8_0 model in the
// fine-tuned student's format (no few-shot prefix). "mean-batch" is the tokens
// per decode with all in flight: the episodes that take the most turns leave
// the batch small at the end, which bounds the speedup whatever the hardware.
//
// FIREACT_GPU_LAYERS offloads layers when a GPU backend is loaded
// (FIREACT_BACKENDS names the directory `make cuda` fills).
func BenchmarkLocalAgent(b *testing.B) {
	if dir := os.Getenv("FIREACT_BACKENDS"); dir != "" {
		if _, err := llama.LoadBackends(dir); err != nil {
			b.Fatal(err)
		}
	}
	gpuLayers, _ := strconv.Atoi(os.Getenv("FIREACT_GPU_LAYERS"))
	cases := []benchCase{
		{"tiny-fewshot", tinyModel, FormatFewShot, gpuLayers},
		{"m110-alpaca", weightModel, FormatAlpaca, gpuLayers},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				serial := benchRun(b, bc, 1, false)
				batched := benchRun(b, bc, 32, false)
				qpmSerial := 32 / serial.elapsed.Minutes()
				qpmBatched := 32 / batched.elapsed.Minutes()
				b.ReportMetric(qpmSerial, "q/min-serial")
				b.ReportMetric(qpmBatched, "q/min-batched")
				b.ReportMetric(qpmBatched/qpmSerial, "speedup")
				st := batched.stats
				b.ReportMetric(float64(st.GeneratedTokens+st.PromptDecoded)/float64(max(st.Decodes, 1)), "mean-batch")
				if bc.format == FormatFewShot {
					full := benchRun(b, bc, 32, true).stats
					b.ReportMetric(float64(full.PromptDecoded)/32, "prompt-decoded/q-noreuse")
					b.ReportMetric(float64(st.PromptDecoded)/32, "prompt-decoded/q-reuse")
					b.ReportMetric(1-float64(st.PromptDecoded)/float64(full.PromptDecoded), "decoded-saved")
				}
			}
		})
	}
}
