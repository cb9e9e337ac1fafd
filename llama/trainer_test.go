package llama

import (
	"crypto/sha256"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// trainModel writes a small llama made in code. nEmbd 256 lets llama.cpp quantize
// it to K-quants (which need rows of 256).
func trainModel(t testing.TB, dir, name string, nEmbd int, seed uint64) string {
	t.Helper()
	path := filepath.Join(dir, name+".gguf")
	cfg := modelgen.LlamaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: nEmbd, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 2 * nEmbd, NCtx: 512, Seed: seed,
	}
	if err := modelgen.WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadPath(t testing.TB, path string, opts ModelOptions) *Model {
	t.Helper()
	m, err := LoadModel(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newTrainer(t testing.TB, m *Model, o TrainerOptions) *Trainer {
	t.Helper()
	tr, err := NewTrainer(m, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

const trainText = "Question: Who directed the film? Thought: I need to search the film. Action: search[the film] Observation: The film was directed by Ann. Thought: The answer is Ann. Action: finish[Ann]"

// agentBatch tokenizes text and scores the second half (as if it were the agent's part).
func agentBatch(t testing.TB, m *Model, text string) TrainBatch {
	t.Helper()
	toks, err := m.Tokenize(text, TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	tg := make([]bool, len(toks))
	for i := len(toks) / 2; i < len(toks); i++ {
		tg[i] = true
	}
	return TrainBatch{Tokens: toks, Target: tg}
}

func TestTrainLoRALossDecreases(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 1), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput, Seed: 1})
	b := agentBatch(t, m, trainText)
	first, err := tr.Step(b, 1e-2)
	if err != nil {
		t.Fatal(err)
	}
	var last StepResult
	for i := 0; i < 40; i++ {
		if last, err = tr.Step(b, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	if last.Loss > first.Loss/3 || last.Scored != first.Scored {
		t.Fatalf("loss %.3f -> %.3f (scored %d/%d): not learning", first.Loss, last.Loss, first.Scored, last.Scored)
	}
	if tr.Steps() != 41 {
		t.Fatalf("Steps() = %d, want 41", tr.Steps())
	}
	t.Logf("loss %.3f -> %.3f", first.Loss, last.Loss)
}

// TestTrainMaskedLossMatchesDecode checks the masked loss against a host reference
// computed from llama_decode's logits: mean NLL over exactly the scored tokens.
func TestTrainMaskedLossMatchesDecode(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 2), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Rank: 4})
	b := agentBatch(t, m, trainText)
	got, err := tr.Eval(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext(ContextOptions{NCtx: 512, TypeK: "f32", TypeV: "f32", FlashAttn: FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lp, err := c.ScoreTokens(b.Tokens)
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
	want := sum / float64(n)
	if got.Scored != n || math.Abs(got.Loss-want) > 1e-4*want {
		t.Fatalf("masked loss %.6f over %d tokens, reference %.6f over %d", got.Loss, got.Scored, want, n)
	}
}

// TestTrainUnscoredLabelHasNoEffect: changing a token that is never a target nor an
// input to a scored prediction must change neither the loss nor the update.
func TestTrainUnscoredLabelHasNoEffect(t *testing.T) {
	dir := t.TempDir()
	path := trainModel(t, dir, "base", 64, 3)
	m := loadPath(t, path, ModelOptions{})
	b1 := agentBatch(t, m, trainText)
	// Unscore the last token, then change it.
	b1.Target[len(b1.Target)-1] = false
	b2 := TrainBatch{Tokens: append([]Token(nil), b1.Tokens...), Target: b1.Target}
	b2.Tokens[len(b2.Tokens)-1] = (b1.Tokens[len(b1.Tokens)-1] + 7) % Token(m.Info().NVocab)
	var after [2][]float32
	var loss [2]float64
	for i, b := range []TrainBatch{b1, b2} {
		tr := newTrainer(t, m, TrainerOptions{Rank: 4, Seed: 5, Targets: TargetsAll})
		r, err := tr.Step(b, 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		loss[i] = r.Loss
		if after[i], err = tr.Param("blk.1.ffn_down.weight.lora_b"); err != nil {
			t.Fatal(err)
		}
	}
	if loss[0] != loss[1] {
		t.Fatalf("losses differ: %v vs %v", loss[0], loss[1])
	}
	for i := range after[0] {
		if after[0][i] != after[1][i] {
			t.Fatalf("update differs at %d: %v vs %v", i, after[0][i], after[1][i])
		}
	}
	// Sanity: scoring that token does change the loss.
	b2.Target = append([]bool(nil), b1.Target...)
	b2.Target[len(b2.Target)-1] = true
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Seed: 5})
	r, err := tr.Eval(b2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Loss == loss[0] {
		t.Fatal("scoring the changed token did not change the loss")
	}
}

// TestTrainGradientCheck compares the gradient implied by one SGD step with a
// central finite difference of the loss, for elements of B and A of several target
// kinds (B at its zero start, A after B has moved).
func TestTrainGradientCheck(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 4), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput, Optimizer: OptimizerSGD, Seed: 9})
	b := agentBatch(t, m, trainText)
	// Move B away from zero so that A has a gradient too.
	for i := 0; i < 3; i++ {
		if _, err := tr.Step(b, 0.05); err != nil {
			t.Fatal(err)
		}
	}
	checkGradients(t, tr, b, []string{
		"blk.0.attn_q.weight.lora_b", "blk.1.attn_v.weight.lora_b", "blk.1.ffn_down.weight.lora_b",
		"output.weight.lora_b", "blk.0.attn_k.weight.lora_a", "blk.0.ffn_gate.weight.lora_a", "blk.1.attn_output.weight.lora_a",
	})
}

// TestTrainMatchesDecodeBitExact trains a few steps, saves the adapter, reloads it
// through llama.cpp and compares llama_decode's logits with the training forward.
func TestTrainMatchesDecodeBitExact(t *testing.T) {
	dir := t.TempDir()
	f32 := trainModel(t, dir, "f32", 256, 6)
	bases := map[string]string{"f32": f32}
	for _, q := range []string{"q8_0", "q4_k_m"} {
		p := filepath.Join(dir, q+".gguf")
		if err := Quantize(f32, p, q, 0); err != nil {
			t.Fatal(err)
		}
		bases[q] = p
	}
	for _, name := range []string{"f32", "q8_0", "q4_k_m"} {
		t.Run(name, func(t *testing.T) {
			m := loadPath(t, bases[name], ModelOptions{})
			tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput, Seed: 2})
			b := agentBatch(t, m, trainText)
			for i := 0; i < 5; i++ {
				if _, err := tr.Step(b, 1e-2); err != nil {
					t.Fatal(err)
				}
			}
			ap := filepath.Join(dir, name+"-adapter.gguf")
			if err := tr.Save(ap); err != nil {
				t.Fatal(err)
			}
			// 64 tokens: a multiple of the SIMD width, so that llama.cpp's padded KV view
			// (zeros past the last token) sums in exactly the same order as the
			// training graph's unpadded attention. Other lengths differ by float
			// rounding (~1e-6) from that reduction order only.
			toks := b.Tokens[:64]
			want, err := tr.Logits(toks)
			if err != nil {
				t.Fatal(err)
			}
			a, err := m.LoadAdapter(ap)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			got := decodeLogits(t, m, a, toks)
			worst := 0.0
			for i := range toks {
				worst = math.Max(worst, maxAbsDiff(got[i], want[i]))
			}
			t.Logf("%s: max |Δlogit| between training forward and llama_decode = %g", name, worst)
			if worst != 0 {
				t.Fatalf("%s: training forward and llama_decode differ by %g (want bit-identical)", name, worst)
			}
		})
	}
}

func fileSHA(t testing.TB, path string) [32]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// TestTrainLowersPerplexity: LoRA on a small text lowers its perplexity well below
// the base's, and the base file is byte-identical afterwards.
func TestTrainLowersPerplexity(t *testing.T) {
	dir := t.TempDir()
	path := trainModel(t, dir, "base", 64, 8)
	before := fileSHA(t, path)
	m := loadPath(t, path, ModelOptions{})
	text := strings.Repeat("the film was directed by ann and she was born in paris . ", 4)
	toks, _ := m.Tokenize(text, TokenizeOptions{AddSpecial: true})
	tg := make([]bool, len(toks))
	for i := range tg {
		tg[i] = i > 0
	}
	tr := newTrainer(t, m, TrainerOptions{Rank: 8, Targets: TargetsAll | TargetOutput, Seed: 3})
	for i := 0; i < 30; i++ {
		if _, err := tr.Step(TrainBatch{Tokens: toks, Target: tg}, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	ap := filepath.Join(dir, "adapter.gguf")
	if err := tr.Save(ap); err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext(ContextOptions{NCtx: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base, err := c.Perplexity(text)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadAdapter(ap)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := c.SetAdapter(a, 1); err != nil {
		t.Fatal(err)
	}
	tuned, err := c.Perplexity(text)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearAdapters()
	t.Logf("perplexity base %.2f, with LoRA %.2f", base.Perplexity, tuned.Perplexity)
	if tuned.Perplexity > base.Perplexity/10 {
		t.Fatalf("perplexity with LoRA %.2f is not well below the base's %.2f", tuned.Perplexity, base.Perplexity)
	}
	if fileSHA(t, path) != before {
		t.Fatal("training changed the base model file")
	}
}

// TestTrainStateResume: 3 steps + save state + new trainer + load + 2 steps equals 5
// steps straight, bit for bit.
func TestTrainStateResume(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 10), ModelOptions{})
	b := agentBatch(t, m, trainText)
	opts := TrainerOptions{Rank: 4, Targets: TargetsAll, Seed: 4}
	straight := newTrainer(t, m, opts)
	for i := 0; i < 5; i++ {
		if _, err := straight.Step(b, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	first := newTrainer(t, m, opts)
	for i := 0; i < 3; i++ {
		first.Step(b, 1e-2)
	}
	state := filepath.Join(dir, "state.gguf")
	if err := first.SaveState(state); err != nil {
		t.Fatal(err)
	}
	resumed := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll, Seed: 99})
	if err := resumed.LoadState(state); err != nil {
		t.Fatal(err)
	}
	if resumed.Steps() != 3 {
		t.Fatalf("resumed at step %d, want 3", resumed.Steps())
	}
	for i := 0; i < 2; i++ {
		resumed.Step(b, 1e-2)
	}
	for _, name := range straight.ParamNames() {
		x, _ := straight.Param(name)
		y, _ := resumed.Param(name)
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%s[%d]: straight %v, resumed %v", name, i, x[i], y[i])
			}
		}
	}
	// A state from another configuration is refused.
	other := newTrainer(t, m, TrainerOptions{Rank: 2, Targets: TargetsAll})
	if err := other.LoadState(state); err == nil {
		t.Fatal("a rank-4 state loaded into a rank-2 trainer")
	}
}

func TestTrainPackedSequencesAreIndependent(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 12), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Rank: 4})
	a := agentBatch(t, m, "Thought: search the film. Action: search[film]")
	b := agentBatch(t, m, "Thought: the answer is Ann. Action: finish[Ann]")
	la, _ := tr.Eval(a)
	lb, _ := tr.Eval(b)
	packed := TrainBatch{
		Tokens:   append(append([]Token(nil), a.Tokens...), b.Tokens...),
		Target:   append(append([]bool(nil), a.Target...), b.Target...),
		SeqStart: []int{0, len(a.Tokens)},
	}
	lp, err := tr.Eval(packed)
	if err != nil {
		t.Fatal(err)
	}
	want := (la.Loss*float64(la.Scored) + lb.Loss*float64(lb.Scored)) / float64(la.Scored+lb.Scored)
	if lp.Scored != la.Scored+lb.Scored || math.Abs(lp.Loss-want) > 1e-5 {
		t.Fatalf("packed loss %.6f (%d scored), separate %.6f (%d)", lp.Loss, lp.Scored, want, la.Scored+lb.Scored)
	}
}

// TestTrainTargetSets runs a real step for every single target and FireAct's q,v:
// the backward rewrite must handle each gradient path.
func TestTrainTargetSets(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 15), ModelOptions{})
	b := agentBatch(t, m, trainText)
	sets := []Target{TargetsQV, TargetQ, TargetK, TargetV, TargetO, TargetGate, TargetUp, TargetDown, TargetOutput, TargetsAll | TargetOutput}
	type tc struct {
		backward Backward
		set      Target
	}
	var cases []tc
	for _, s := range sets {
		cases = append(cases, tc{BackwardTransposed, s})
	}
	cases = append(cases, tc{BackwardTransposedQ8, TargetsQV}, tc{BackwardOutProd, TargetsQV}, tc{BackwardTransposedQ8, TargetsAll},
		tc{BackwardTransient, TargetsAll | TargetOutput}, tc{BackwardTransient, TargetsQV})
	for _, c := range cases {
		tr := newTrainer(t, m, TrainerOptions{Rank: 2, Targets: c.set, Backward: c.backward, Threads: 1})
		r0, err := tr.Step(b, 2e-2)
		if err != nil {
			t.Fatalf("%s targets %#x: %v", c.backward, c.set, err)
		}
		r, err := tr.Step(b, 2e-2)
		if err != nil {
			t.Fatal(err)
		}
		if !(r.Loss < r0.Loss) {
			t.Errorf("%s targets %#x: loss %.4f -> %.4f", c.backward, c.set, r0.Loss, r.Loss)
		}
		tr.Close()
	}
}

func TestVocabOnlyInfo(t *testing.T) {
	m := loadPath(t, storiesPath, ModelOptions{VocabOnly: true})
	if info := m.Info(); info.NLayer != 5 || info.NVocab != 512 || info.NHead != 8 {
		t.Fatalf("vocab-only info %+v", info)
	}
	if toks, err := m.Tokenize("Once upon a time", TokenizeOptions{}); err != nil || len(toks) == 0 {
		t.Fatalf("vocab-only tokenize: %v %v", toks, err)
	}
}

func TestTrainRejects(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 14), ModelOptions{})
	if _, err := NewTrainer(m, TrainerOptions{Full: true}); err == nil {
		t.Fatal("full training of an mmap-loaded model accepted")
	}
	tr := newTrainer(t, m, TrainerOptions{Rank: 4})
	if _, err := tr.Step(TrainBatch{Tokens: []Token{1, 5, 6}, Target: []bool{true, false, false}}, 1e-3); err == nil {
		t.Fatal("a batch with no scored tokens accepted")
	}
	if _, err := tr.Step(TrainBatch{Tokens: []Token{1, 999999}, Target: []bool{false, true}}, 1e-3); err == nil {
		t.Fatal("an out-of-vocabulary token accepted")
	}
	if _, err := ParseTargets("q,bogus"); err == nil {
		t.Fatal("bogus target parsed")
	}
}

// TestTiedOutputTargetRefused: on a model whose output is token_embd (Llama-3.2,
// Qwen2.5 0.5–1.5B, Gemma), an output LoRA would be written as
// token_embd.weight.lora_* in the output's orientation, which llama.cpp reads
// as an embedding adapter; it is refused before training, with the reason.
// Untied models still train it.
func TestTiedOutputTargetRefused(t *testing.T) {
	dir := t.TempDir()
	tied := filepath.Join(dir, "tied.gguf")
	cfg := modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 1, NHead: 4, NFF: 128, NCtx: 256, Seed: 1, TiedOutput: true}
	if err := modelgen.WriteLlama(tied, cfg); err != nil {
		t.Fatal(err)
	}
	m := loadPath(t, tied, ModelOptions{})
	_, err := NewTrainer(m, TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput})
	if err == nil || !strings.Contains(err.Error(), "ties its output") {
		t.Fatalf("output target on a tied model: err = %v, want a refusal naming the tied output", err)
	}
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll})
	tr.Close()
	untied := loadPath(t, trainModel(t, dir, "untied", 64, 1), ModelOptions{})
	newTrainer(t, untied, TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput}).Close()
}

// TestBackwardModesAgree: on a quantized base, the transient backward (each
// weight dequantized and transposed inside the step's graph) computes the same
// update as the persistent transposed F32 copies; ggml's own OUT_PROD path
// agrees within float rounding, and the Q8_0 copies approximately.
func TestBackwardModesAgree(t *testing.T) {
	dir := t.TempDir()
	f32 := trainModel(t, dir, "base", 256, 21)
	q8 := filepath.Join(dir, "q8.gguf")
	if err := Quantize(f32, q8, "q8_0", 0); err != nil {
		t.Fatal(err)
	}
	m := loadPath(t, q8, ModelOptions{})
	b := agentBatch(t, m, trainText)
	after := map[Backward]map[string][]float32{}
	for _, mode := range []Backward{BackwardTransposed, BackwardTransient, BackwardOutProd, BackwardTransposedQ8} {
		tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll, Backward: mode, Threads: 2, Seed: 5, Optimizer: OptimizerSGD})
		before := map[string][]float32{}
		for _, name := range tr.ParamNames() {
			v, err := tr.Param(name)
			if err != nil {
				t.Fatal(err)
			}
			before[name] = v
		}
		if _, err := tr.Step(b, 0.5); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		// The update (B starts at zero, so the first step moves B only).
		after[mode] = map[string][]float32{}
		for _, name := range tr.ParamNames() {
			v, err := tr.Param(name)
			if err != nil {
				t.Fatal(err)
			}
			for i := range v {
				v[i] -= before[name][i]
			}
			after[mode][name] = v
		}
		tr.Close()
	}
	// Relative distance of each mode's update from the reference's.
	var norm float64
	for _, v := range after[BackwardTransposed] {
		for _, x := range v {
			norm += float64(x) * float64(x)
		}
	}
	if norm == 0 {
		t.Fatal("the reference step changed nothing")
	}
	ref := after[BackwardTransposed]
	for mode, tol := range map[Backward]float64{BackwardTransient: 1e-5, BackwardOutProd: 1e-4, BackwardTransposedQ8: 0.05} {
		var num, den float64
		for name, want := range ref {
			got := after[mode][name]
			for i := range want {
				d := float64(got[i] - want[i])
				num += d * d
				den += float64(want[i]) * float64(want[i])
			}
		}
		if rel := math.Sqrt(num / den); rel > tol || math.IsNaN(rel) {
			t.Errorf("%s: parameters after one step differ from transposed by %.2e (relative), want ≤ %.0e", mode, rel, tol)
		} else {
			t.Logf("%s: relative difference %.2e", mode, rel)
		}
	}
}
