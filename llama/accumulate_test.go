package llama

import (
	"math"
	"path/filepath"
	"testing"
)

// params returns every trainable tensor's values by name.
func params(t testing.TB, tr *Trainer) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, n := range tr.ParamNames() {
		v, err := tr.Param(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = v
	}
	return out
}

// maxDiff is the largest absolute difference between two trainers' parameters,
// relative to the largest value.
func maxDiff(a, b map[string][]float32) (diff, scale float64) {
	for n, va := range a {
		for i, x := range va {
			diff = max(diff, math.Abs(float64(x-b[n][i])))
			scale = max(scale, math.Abs(float64(x)))
		}
	}
	return diff, scale
}

func pack(bs ...TrainBatch) TrainBatch {
	var p TrainBatch
	for _, b := range bs {
		p.SeqStart = append(p.SeqStart, len(p.Tokens))
		p.Tokens = append(p.Tokens, b.Tokens...)
		p.Target = append(p.Target, b.Target...)
	}
	return p
}

// TestTrainAccumulateMatchesOneBatch: an optimizer step accumulated over
// micro-batches of unequal scored length is the step of one packed batch of the
// same examples — the loss normalisation is per scored token of the whole step,
// not an average of per-micro-batch means. SGD makes the update proportional to
// the gradient (AdamW's first steps are nearly scale-free), AdamW checks the
// moments see the same gradient.
func TestTrainAccumulateMatchesOneBatch(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 21), ModelOptions{})
	a := agentBatch(t, m, "Thought: search the film. Action: search[film]")
	b := agentBatch(t, m, trainText)
	c := agentBatch(t, m, "Thought: the answer is Ann. Action: finish[Ann]")
	if a.Scored() == b.Scored() {
		t.Fatal("the micro-batches must differ in scored tokens for the test to mean anything")
	}
	for _, opt := range []Optimizer{OptimizerSGD, OptimizerAdamW} {
		o := TrainerOptions{Rank: 4, Targets: TargetsAll, Seed: 3, Optimizer: opt, Threads: 1}
		one, acc := newTrainer(t, m, o), newTrainer(t, m, o)
		for step := 0; step < 3; step++ {
			r1, err := one.Step(pack(a, b, c), 0.05)
			if err != nil {
				t.Fatal(err)
			}
			r2, err := acc.StepAccumulate([]TrainBatch{a, pack(b, c)}, 0.05)
			if err != nil {
				t.Fatal(err)
			}
			if r1.Scored != r2.Scored || math.Abs(r1.Loss-r2.Loss) > 1e-4*r1.Loss {
				t.Fatalf("%s step %d: loss %.6f (%d scored) one batch, %.6f (%d) accumulated", opt, step, r1.Loss, r1.Scored, r2.Loss, r2.Scored)
			}
		}
		if one.Steps() != 3 || acc.Steps() != 3 {
			t.Fatalf("%s: steps %d and %d, want 3", opt, one.Steps(), acc.Steps())
		}
		d, s := maxDiff(params(t, one), params(t, acc))
		if d > 1e-4*s {
			t.Fatalf("%s: parameters differ by %g (scale %g)", opt, d, s)
		}
		t.Logf("%s: max difference %g of %g", opt, d, s)
	}
}

// TestTrainLoRADropout: dropout acts on the adapter's input only and only in
// training: with B = 0 the first step's loss and every evaluation equal the
// no-dropout trainer's, while the update differs (B's gradient sees the dropped
// input); the masks come from the seed and step, so two trainers — and one
// resumed from a saved state — take identical steps.
func TestTrainLoRADropout(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 22), ModelOptions{})
	b := agentBatch(t, m, trainText)
	o := TrainerOptions{Rank: 4, Seed: 5, Threads: 1}
	plain := newTrainer(t, m, o)
	o.LoRADropout = 0.3
	d1, d2 := newTrainer(t, m, o), newTrainer(t, m, o)
	var loss []float64
	for _, tr := range []*Trainer{plain, d1, d2} {
		r, err := tr.Step(b, 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		loss = append(loss, r.Loss)
	}
	if loss[0] != loss[1] || loss[1] != loss[2] {
		t.Fatalf("first-step losses %v: dropout changed the frozen path", loss)
	}
	if d, _ := maxDiff(params(t, d1), params(t, d2)); d != 0 {
		t.Fatalf("same seed, different dropout masks: parameters differ by %g", d)
	}
	if d, _ := maxDiff(params(t, plain), params(t, d1)); d == 0 {
		t.Fatal("dropout 0.3 left the update unchanged")
	}
	// Evaluation has no dropout: copy d1's adapter into plain and compare losses.
	for n, v := range params(t, d1) {
		if err := plain.SetParam(n, v); err != nil {
			t.Fatal(err)
		}
	}
	e0, _ := plain.Eval(b)
	e1, _ := d1.Eval(b)
	if e0.Loss != e1.Loss {
		t.Fatalf("eval loss %.6f with dropout set, %.6f without", e1.Loss, e0.Loss)
	}
	// Resume: a fresh trainer loading d1's state draws the same next masks.
	state := filepath.Join(dir, "state.gguf")
	if err := d1.SaveState(state); err != nil {
		t.Fatal(err)
	}
	d3 := newTrainer(t, m, o)
	if err := d3.LoadState(state); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*Trainer{d1, d3} {
		if _, err := tr.StepAccumulate([]TrainBatch{b, b}, 1e-2); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := maxDiff(params(t, d1), params(t, d3)); d != 0 {
		t.Fatalf("resumed trainer drew other masks: parameters differ by %g", d)
	}
	if _, err := NewTrainer(m, TrainerOptions{Rank: 4, LoRADropout: 1}); err == nil {
		t.Fatal("dropout 1 accepted")
	}
}
