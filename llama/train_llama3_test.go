package llama

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// llama3Case is a Llama-3.x-shaped model made in code: four query heads per
// key/value head (Llama-3.2-1B's 32/8), RoPE base 500000 and
// llama3 RoPE scaling written as rope_freqs.weight, as convert_hf_to_gguf.py
// writes Llama-3.1 and 3.2.
type llama3Case struct {
	name    string
	tied    bool // Llama-3.2 ties its output to token_embd (no output.weight)
	scaling modelgen.Llama3RopeScaling
	targets Target // every target the case can train
}

// llama3Cases: Llama-3.1's scaling (factor 8, untied), Llama-3.2's (factor 32,
// tied), and a strong scaling (original context 32: every pair but the first
// slowed 32×) so that a gradient ignoring the factors is far off, not only in
// the low-frequency pairs the real settings scale.
func llama3Cases() []llama3Case {
	return []llama3Case{
		{"llama-3.1", false, modelgen.Llama3RopeScaling{Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}, TargetsAll | TargetOutput},
		{"llama-3.2-tied", true, modelgen.Llama3RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}, TargetsAll},
		{"strong", false, modelgen.Llama3RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 32}, TargetsAll | TargetOutput},
	}
}

// llama3Config returns the case's model; scaled false drops rope_freqs and
// keeps every other tensor (modelgen seeds each tensor by its name).
func llama3Config(c llama3Case, scaled bool) modelgen.LlamaConfig {
	cfg := modelgen.LlamaConfig{
		Name: "modelgen-" + c.name, Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		// Head size 32 (Llama-3.2's is 64) keeps the tests fast and still
		// has pairs in all three regimes of the factors: kept, blended and
		// slowed (see modelgen.TestLlama3RopeFactors).
		NEmbd: 128, NLayer: 2, NHead: 4, NHeadKV: 1, NFF: 256, NCtx: 512,
		RopeFreqBase: 500000, TiedOutput: c.tied, Seed: 31,
	}
	if scaled {
		s := c.scaling
		cfg.RopeScaling = &s
	}
	return cfg
}

func writeLlama3(t testing.TB, dir string, c llama3Case, scaled bool) string {
	t.Helper()
	name := c.name
	if !scaled {
		name += "-unscaled"
	}
	path := filepath.Join(dir, name+".gguf")
	if err := modelgen.WriteLlama(path, llama3Config(c, scaled)); err != nil {
		t.Fatal(err)
	}
	return path
}

// decodeLogits returns llama_decode's logits of every position of toks, with
// adapter a (or none) at scale 1, from an F32 cache without flash attention
// (the settings under which the training graph is bit-identical).
func decodeLogits(t testing.TB, m *Model, a *Adapter, toks []Token) [][]float32 {
	return decodeLogitsAt(t, m, a, toks, 512)
}

// decodeLoss is the mean NLL over b's scored tokens computed from
// llama_decode's log-probabilities, with adapter a (or none).
func decodeLoss(t testing.TB, m *Model, a *Adapter, b TrainBatch) float64 {
	return decodeLossAt(t, m, a, b, 512)
}

// trainFive takes five AdamW steps on b at lr 1e-2 and checks that the loss
// fell; it returns the first step's loss and the loss after the fifth.
func trainFive(t *testing.T, tr *Trainer, b TrainBatch) (first, after float64) {
	t.Helper()
	r, err := tr.Step(b, 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := tr.Step(b, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	e, err := tr.Eval(b)
	if err != nil {
		t.Fatal(err)
	}
	if !(e.Loss < r.Loss) {
		t.Fatalf("loss %.4f -> %.4f after 5 steps: not learning", r.Loss, e.Loss)
	}
	return r.Loss, e.Loss
}

// checkReloaded saves tr's adapter at path, loads it into m and checks that
// llama_decode with it, at a context of nCtx tokens, gives the trainer's
// logits of toks bit for bit and its loss on b (after); it returns the
// reloaded adapter's loss.
func checkReloaded(t *testing.T, m *Model, tr *Trainer, b TrainBatch, toks []Token, path string, nCtx int, after float64) float64 {
	t.Helper()
	if err := tr.Save(path); err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadAdapter(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want, err := tr.Logits(toks)
	if err != nil {
		t.Fatal(err)
	}
	if d := worstDiff(want, decodeLogitsAt(t, m, a, toks, nCtx)); d != 0 {
		t.Fatalf("trained: training forward and llama_decode with the reloaded adapter differ by %g (want bit-identical)", d)
	}
	got := decodeLossAt(t, m, a, b, nCtx)
	if math.Abs(got-after) > 1e-4*after {
		t.Fatalf("reloaded adapter: llama_decode loss %.6f, trainer %.6f", got, after)
	}
	return got
}

// decodeLogitsAt is decodeLogits at a context of nCtx tokens: the context
// decides which LongRoPE table llama.cpp uses.
func decodeLogitsAt(t testing.TB, m *Model, a *Adapter, toks []Token, nCtx int) [][]float32 {
	t.Helper()
	c := decodeContext(t, m, a, nCtx)
	var batch Batch
	for i, tk := range toks {
		batch.Add(tk, i, 0, true)
	}
	if err := c.Decode(&batch); err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(toks))
	for i := range toks {
		l, err := c.Logits(i)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = append([]float32(nil), l...)
	}
	return out
}

// decodeLossAt is decodeLoss at a context of nCtx tokens.
func decodeLossAt(t testing.TB, m *Model, a *Adapter, b TrainBatch, nCtx int) float64 {
	t.Helper()
	lp, err := decodeContext(t, m, a, nCtx).ScoreTokens(b.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	n := 0
	for i := 1; i < len(b.Tokens); i++ {
		if b.Target[i] {
			sum -= float64(lp[i-1])
			n++
		}
	}
	return sum / float64(n)
}

// decodeContext is a context with the settings under which the training
// graph is bit-identical (F32 cache, no flash attention), closed at the
// test's end, with adapter a (or none) at scale 1.
func decodeContext(t testing.TB, m *Model, a *Adapter, nCtx int) *Context {
	t.Helper()
	c, err := m.NewContext(ContextOptions{NCtx: nCtx, TypeK: "f32", TypeV: "f32", FlashAttn: FlashAttnOff, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if a != nil {
		if err := c.SetAdapter(a, 1); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func worstDiff(a, b [][]float32) float64 {
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, maxAbsDiff(a[i], b[i]))
	}
	return worst
}

// TestTrainLlama3MatchesDecode: on Llama-3.x-shaped models (rope_freqs), the
// training forward equals llama_decode bit for bit before and after training,
// and the saved adapter, reloaded by llama.cpp, reproduces the trainer's loss.
// The same weights without rope_freqs decode differently, so the comparison
// sees the factors.
func TestTrainLlama3MatchesDecode(t *testing.T) {
	dir := t.TempDir()
	for _, c := range llama3Cases() {
		t.Run(c.name, func(t *testing.T) {
			m := loadPath(t, writeLlama3(t, dir, c, true), ModelOptions{})
			tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: c.targets, Seed: 2, Threads: 2})
			b := agentBatch(t, m, trainText)
			toks := b.Tokens[:64] // see TestTrainMatchesDecodeBitExact for why 64
			base, err := tr.Logits(toks)
			if err != nil {
				t.Fatal(err)
			}
			if d := worstDiff(base, decodeLogits(t, m, nil, toks)); d != 0 {
				t.Fatalf("untrained: training forward and llama_decode differ by %g (want bit-identical)", d)
			}
			unscaled := loadPath(t, writeLlama3(t, dir, c, false), ModelOptions{})
			control := worstDiff(base, decodeLogits(t, unscaled, nil, toks))
			if control < 1e-4 {
				t.Fatalf("the model without rope_freqs decodes within %g of the training forward: the test cannot see the factors", control)
			}
			first, after := trainFive(t, tr, b)
			got := checkReloaded(t, m, tr, b, toks, filepath.Join(dir, c.name+"-adapter.gguf"), 512, after)
			t.Logf("%s: bit-identical logits; loss %.4f -> %.4f, reloaded %.6f; without rope_freqs logits move by %.3g",
				c.name, first, after, got, control)
		})
	}
}

// targetKinds are the tensor kinds of the target bits, in train.h's order.
var targetKinds = []struct {
	bit  Target
	kind string
}{{TargetQ, "attn_q"}, {TargetK, "attn_k"}, {TargetV, "attn_v"}, {TargetO, "attn_output"},
	{TargetGate, "ffn_gate"}, {TargetUp, "ffn_up"}, {TargetDown, "ffn_down"}, {TargetOutput, "output"}}

// loraNames lists, for every target in set, its A and B in alternating layers.
func loraNames(set Target) []string {
	var out []string
	for i, k := range targetKinds {
		if set&k.bit == 0 {
			continue
		}
		prefix := fmt.Sprintf("blk.%d.%s", i%2, k.kind)
		if k.bit == TargetOutput {
			prefix = "output"
		}
		out = append(out, prefix+".weight.lora_b", prefix+".weight.lora_a")
	}
	return out
}

// checkGradients compares, for each named parameter, the gradient implied by one
// SGD step (the element that moved most) with a central finite difference of
// the loss (every gradient check of the trainer uses it). tr must use OptimizerSGD and have
// taken a few steps, so that B is away from zero and A has a gradient.
func checkGradients(t *testing.T, tr *Trainer, b TrainBatch, names []string) {
	t.Helper()
	loss := func() (float64, error) {
		r, err := tr.Eval(b)
		return r.Loss, err
	}
	for _, name := range names {
		p, err := tr.ProbeGradient(name, b, 1e-3, 1e-2, loss)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Agrees(0.05, 1e-3) {
			t.Errorf("%s%v", name, p)
		} else {
			t.Logf("%s%v", name, p)
		}
	}
}

// TestTrainLlama3GradientCheck: with rope_freqs in the graph, the gradient of
// every LoRA target (A and B of q, k, v, o, gate, up, down, and the output
// where the model has its own) matches a finite difference of the loss.
func TestTrainLlama3GradientCheck(t *testing.T) {
	dir := t.TempDir()
	for _, c := range llama3Cases() {
		t.Run(c.name, func(t *testing.T) {
			m := loadPath(t, writeLlama3(t, dir, c, true), ModelOptions{})
			tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: c.targets, Optimizer: OptimizerSGD, Seed: 9, Threads: 2})
			b := agentBatch(t, m, trainText)
			for i := 0; i < 3; i++ {
				if _, err := tr.Step(b, 0.05); err != nil {
					t.Fatal(err)
				}
			}
			checkGradients(t, tr, b, loraNames(c.targets))
		})
	}
}

// TestTrainLlama3TiedDefaultTargets: a Llama-3.2-shaped model (rope_freqs, no
// output.weight) trains with the default targets (q, v) and learns, while an
// output target is still refused with the reason.
func TestTrainLlama3TiedDefaultTargets(t *testing.T) {
	c := llama3Cases()[1]
	if !c.tied {
		t.Fatal("case 1 is not the tied Llama-3.2 shape")
	}
	m := loadPath(t, writeLlama3(t, t.TempDir(), c, true), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Seed: 1, Threads: 2})
	if got := tr.Options().Targets; got != TargetsQV {
		t.Fatalf("default targets %#x, want q,v (%#x)", got, TargetsQV)
	}
	for _, name := range tr.ParamNames() {
		if !strings.Contains(name, ".attn_q.") && !strings.Contains(name, ".attn_v.") {
			t.Fatalf("default targets train %s", name)
		}
	}
	b := agentBatch(t, m, trainText)
	first, err := tr.Step(b, 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	var last StepResult
	for i := 0; i < 20; i++ {
		if last, err = tr.Step(b, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	if !(last.Loss < first.Loss*0.8) {
		t.Fatalf("loss %.4f -> %.4f in 21 steps: not learning", first.Loss, last.Loss)
	}
	t.Logf("tied Llama-3.2 shape, targets q,v: loss %.4f -> %.4f", first.Loss, last.Loss)
	if _, err := NewTrainer(m, TrainerOptions{Targets: TargetsQV | TargetOutput}); err == nil || !strings.Contains(err.Error(), "ties its output") {
		t.Fatalf("output target on the tied model: err = %v, want the tied-output refusal", err)
	}
}
