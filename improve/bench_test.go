package improve

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
)

// The reward loops' benchmarks (make bench). Each reports its figures and
// their ratio against a baseline measured in the same run on the same model,
// the best of interleaved repetitions, so that other load on the machine
// moves both sides alike.

// benchReps are the interleaved repetitions of each side of a comparison.
const benchReps = 3

var (
	benchOnce  sync.Once
	benchModel string
	benchErr   error
)

// benchModelPath is a ~23M-parameter llama made in code (384 wide, 6
// layers, a 32,000-token vocabulary with tied embeddings) quantized to Q8_0,
// a LoRA student's usual base; built once per process.
func benchModelPath(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fireact-improve-bench-")
		if err != nil {
			benchErr = err
			return
		}
		v, err := modelgen.SPMVocab(modelgen.BasicWords()).Pad(32000)
		if err != nil {
			benchErr = err
			return
		}
		f32 := filepath.Join(dir, "m23-f32.gguf")
		cfg := modelgen.LlamaConfig{Name: "bench-23M", Vocab: v, NEmbd: 384, NLayer: 6, NHead: 6, NHeadKV: 6, NFF: 1024,
			NCtx: 4096, TiedOutput: true, Seed: 1}
		if benchErr = modelgen.WriteLlama(f32, cfg); benchErr != nil {
			return
		}
		benchModel = filepath.Join(dir, "m23-q8_0.gguf")
		benchErr = llama.Quantize(f32, benchModel, "q8_0", 0)
		os.Remove(f32)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchModel
}

func benchLoad(b *testing.B) *llama.Model {
	m, err := llama.LoadModel(benchModelPath(b), llama.ModelOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// randomTokens are n tokens drawn from m's vocabulary after BOS: prompts
// that share no prefix with each other or with any earlier one.
func randomTokens(m *llama.Model, rng *rand.Rand, n int) []llama.Token {
	info := m.Info()
	toks := []llama.Token{info.BOS}
	for len(toks) < n {
		toks = append(toks, llama.Token(3+rng.IntN(info.NVocab-3)))
	}
	return toks
}

// BenchmarkGroupRollouts measures GRPO's and rejection sampling's rollouts:
// a group of K = 8 samples of one 512-token prompt in flight together on the
// engine (which decodes the prompt once and copies its KV cells to the other
// seven) against 8 samples of 8 different prompts of that length, each 32
// tokens at temperature 1. "shared/independent" is the ratio of rollouts per
// second; "prompt-decoded/rollout" counts the prompt tokens the shared group
// decoded per rollout (the copies decode only their last token, for its
// logits).
func BenchmarkGroupRollouts(b *testing.B) {
	const k, promptLen, gen = 8, 512, 32
	m := benchLoad(b)
	e, err := llama.NewEngine(m, llama.EngineOptions{PerRequest: promptLen + gen + 8, Context: llama.ContextOptions{NSeqMax: k}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	group := func(prompts [][]llama.Token) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for i, p := range prompts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.Generate(context.Background(), llama.Request{Tokens: p, MaxTokens: gen, IgnoreEOS: true,
					Sampling: llama.SamplingOptions{Temperature: 1, Seed: uint32(i + 1)}}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	shared := func() time.Duration {
		p := randomTokens(m, rng, promptLen)
		ps := make([][]llama.Token, k)
		for i := range ps {
			ps[i] = p
		}
		return group(ps)
	}
	independent := func() time.Duration {
		ps := make([][]llama.Token, k)
		for i := range ps {
			ps[i] = randomTokens(m, rng, promptLen)
		}
		return group(ps)
	}
	shared() // warm-up: the context's compute buffers
	independent()
	sharedBest, indepBest := time.Duration(1<<62), time.Duration(1<<62)
	var decoded int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range benchReps {
			before := e.Stats().PromptDecoded
			sharedBest = min(sharedBest, shared())
			decoded = e.Stats().PromptDecoded - before
			indepBest = min(indepBest, independent())
		}
	}
	sharedRate, indepRate := k/sharedBest.Seconds(), k/indepBest.Seconds()
	b.ReportMetric(sharedRate, "shared-rollouts/s")
	b.ReportMetric(indepRate, "independent-rollouts/s")
	b.ReportMetric(sharedRate/indepRate, "shared/independent")
	b.ReportMetric(float64(decoded)/k, "prompt-decoded/rollout")
}

// BenchmarkRLStep measures a GRPO step against a supervised (SFT) step on
// the same batch: 4 rollouts of 256 tokens whose first 128 (the prompt) are
// masked, a rank-8 LoRA on q and v (GRPO's default adapter). The RL step is
// what grpoLoop does per batch: the current policy's log-probabilities, the
// clipped-surrogate and KL weights, then the weighted step; "rl/sft" is its
// time over the SFT step's. "rl-phase/sft" adds what a phase of one epoch
// spends per batch besides: the rollout policy's and the reference's
// log-probabilities, one forward pass each.
func BenchmarkRLStep(b *testing.B) {
	const rollouts, length, prompt = 4, 256, 128
	m := benchLoad(b)
	targets, err := llama.ParseTargets("q,v")
	if err != nil {
		b.Fatal(err)
	}
	opts := llama.TrainerOptions{Rank: 8, Alpha: 16, Targets: targets, Seed: 1}
	newTrainer := func() *llama.Trainer {
		tr, err := llama.NewTrainer(m, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		return tr
	}
	policy, reference := newTrainer(), newTrainer()
	rng := rand.New(rand.NewPCG(3, 4))
	exs := make([]finetune.Example, rollouts)
	idx := make([]int, rollouts)
	var adv []float32
	for i := range exs {
		toks := randomTokens(m, rng, length)
		tg := make([]bool, length)
		for j := prompt; j < length; j++ {
			tg[j] = true
		}
		exs[i], idx[i] = finetune.Example{Tokens: toks, Target: tg}, i
		for range length - prompt {
			adv = append(adv, []float32{1.1, -0.4, 0.7, -1.3}[i])
		}
	}
	batch := finetune.Batch(exs, idx)
	logProbs := func(tr *llama.Trainer) (time.Duration, []float32) {
		start := time.Now()
		var lp []float32
		for i := range exs {
			x, err := tr.TokenLogProbs(finetune.Batch(exs, []int{i}))
			if err != nil {
				b.Fatal(err)
			}
			lp = append(lp, x...)
		}
		return time.Since(start), lp
	}
	sft := func() time.Duration {
		start := time.Now()
		if _, err := policy.Step(batch, 1e-4); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	_, old := logProbs(policy)
	_, ref := logProbs(reference)
	rl := func() time.Duration {
		start := time.Now()
		lp, err := policy.TokenLogProbs(batch)
		if err != nil {
			b.Fatal(err)
		}
		w, _, err := finetune.PolicyWeights(finetune.PolicyLoss{Clip: 0.2, KL: 0.05}, adv, lp, old, ref)
		if err != nil {
			b.Fatal(err)
		}
		wb := batch
		if wb.Weights, err = scatterWeights(batch, w); err != nil {
			b.Fatal(err)
		}
		if _, err := policy.Step(wb, 1e-4); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	sft() // warm-up: the trainer's graphs and buffers
	rl()
	sftBest, rlBest, lpBest := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range benchReps {
			sftBest = min(sftBest, sft())
			rlBest = min(rlBest, rl())
			d, _ := logProbs(policy)
			lpBest = min(lpBest, d)
		}
	}
	tokens := float64(rollouts * length)
	b.ReportMetric(tokens/sftBest.Seconds(), "sft-tok/s")
	b.ReportMetric(tokens/rlBest.Seconds(), "rl-tok/s")
	b.ReportMetric(rlBest.Seconds()/sftBest.Seconds(), "rl/sft")
	b.ReportMetric((rlBest+2*lpBest).Seconds()/sftBest.Seconds(), "rl-phase/sft")
}
