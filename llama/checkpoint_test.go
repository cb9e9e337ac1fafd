package llama

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// TestGradientCheckpointingIsTheSameStep: a step split into one graph per
// block (gradient checkpointing) computes the loss and the update of the
// whole graph — bit for bit, since every block runs the same operations on
// the same values and the gradient entering a block is passed on exactly.
// Covered: AdamW and SGD, dropout (the masks keep their whole-graph
// indices), a weighted (policy-gradient) loss, gradient accumulation, a
// quantized base through the transient backward, target sets with no block
// parameter (output only) or no head parameter, and Gemma-2/3 (their own
// graph, sliding-window and global blocks).
func TestGradientCheckpointingIsTheSameStep(t *testing.T) {
	dir := t.TempDir()
	f32 := trainModel(t, dir, "base", 64, 31)
	q8 := filepath.Join(dir, "q8.gguf")
	if err := Quantize(f32, q8, "q8_0", 0); err != nil {
		t.Fatal(err)
	}
	models := map[string]*Model{"f32": loadPath(t, f32, ModelOptions{}), "q8_0": loadPath(t, q8, ModelOptions{})}
	// Gemma's own graph: sliding-window and global blocks in separate segments.
	for _, c := range gemmaCases()[:2] {
		models[c.name] = loadPath(t, writeGemma(t, dir, c.name, c.cfg), ModelOptions{})
	}
	cases := []struct {
		model    string
		opts     TrainerOptions
		weighted bool
		accum    bool
	}{
		{model: "f32", opts: TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput, Optimizer: OptimizerAdamW}},
		{model: "f32", opts: TrainerOptions{Rank: 4, Targets: TargetsAll, Optimizer: OptimizerSGD, LoRADropout: 0.25}},
		{model: "f32", opts: TrainerOptions{Rank: 2, Targets: TargetOutput}},
		{model: "f32", opts: TrainerOptions{Rank: 2, Targets: TargetQ | TargetDown}, weighted: true},
		{model: "q8_0", opts: TrainerOptions{Rank: 4, Targets: TargetsAll, F32Head: true, LoRADropout: 0.1, CheckpointKeep: 2}, accum: true},
		{model: "gemma2", opts: TrainerOptions{Rank: 4, Targets: TargetsAll, LoRADropout: 0.1}},
		{model: "gemma3", opts: TrainerOptions{Rank: 4, Targets: TargetsAll}, weighted: true},
		// Three of its six blocks run with the head, a sliding-window and
		// a global one among them, the other three are recomputed.
		{model: "gemma3", opts: TrainerOptions{Rank: 4, Targets: TargetsAll, LoRADropout: 0.1, CheckpointKeep: 3}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d-%s", i, c.model), func(t *testing.T) {
			m := models[c.model]
			a := agentBatch(t, m, trainText)
			b := agentBatch(t, m, "Thought: the answer is Ann. Action: finish[Ann]")
			batch := pack(a, b)
			if c.weighted {
				batch.Weights = make([]float32, len(batch.Tokens))
				for j := range batch.Weights {
					batch.Weights[j] = float32(j%5) - 1.5 // negative ones too, as advantages are
				}
			}
			c.opts.Seed, c.opts.Threads = 7, 2
			plain := newTrainer(t, m, c.opts)
			c.opts.GradientCheckpointing = true
			ckpt := newTrainer(t, m, c.opts)
			for step := 0; step < 3; step++ {
				var r1, r2 StepResult
				var err1, err2 error
				if c.accum {
					r1, err1 = plain.StepAccumulate([]TrainBatch{a, b}, 0.05)
					r2, err2 = ckpt.StepAccumulate([]TrainBatch{a, b}, 0.05)
				} else {
					r1, err1 = plain.Step(batch, 0.05)
					r2, err2 = ckpt.Step(batch, 0.05)
				}
				if err1 != nil || err2 != nil {
					t.Fatalf("step %d: %v / %v", step, err1, err2)
				}
				if r1 != r2 {
					t.Fatalf("step %d: whole graph %+v, checkpointed %+v", step, r1, r2)
				}
			}
			if d, s := maxDiff(params(t, plain), params(t, ckpt)); d != 0 {
				t.Fatalf("parameters after 3 steps differ by %g (scale %g)", d, s)
			}
			if ckpt.Steps() != 3 {
				t.Fatalf("checkpointed trainer counts %d steps, want 3", ckpt.Steps())
			}
		})
	}
}

// TestGradientCheckpointingRefusedForFullTraining: full training keeps every
// weight as a parameter, which the per-block passes do not handle.
func TestGradientCheckpointingRefusedForFullTraining(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 32), ModelOptions{NoMmap: true})
	_, err := NewTrainer(m, TrainerOptions{Full: true, GradientCheckpointing: true})
	if err == nil {
		t.Fatal("full training with gradient checkpointing was accepted")
	}
}

// TestTransientBackwardChunksLargeWeights: the transient backward takes a
// frozen weight larger than 32 MiB in F32 (here the output matrix of a
// 40k-token vocabulary) in row blocks; the update equals the one through a
// whole transposed copy up to float rounding.
func TestTransientBackwardChunksLargeWeights(t *testing.T) {
	dir := t.TempDir()
	v, err := modelgen.SPMVocab(modelgen.BasicWords()).Pad(40000)
	if err != nil {
		t.Fatal(err)
	}
	f32 := filepath.Join(dir, "f32.gguf")
	cfg := modelgen.LlamaConfig{Vocab: v, NEmbd: 256, NLayer: 1, NHead: 4, NHeadKV: 2, NFF: 512, NCtx: 512, Seed: 9}
	if err := modelgen.WriteLlama(f32, cfg); err != nil {
		t.Fatal(err)
	}
	q8 := filepath.Join(dir, "q8.gguf")
	if err := Quantize(f32, q8, "q8_0", 0); err != nil {
		t.Fatal(err)
	}
	m := loadPath(t, q8, ModelOptions{})
	b := agentBatch(t, m, trainText)
	update := func(mode Backward) map[string][]float32 {
		tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput, Backward: mode, Threads: 2, Seed: 5,
			Optimizer: OptimizerSGD})
		// B starts at zero, so the first step changes B by its gradient;
		// a second step's update also goes through the A gradients.
		for i := 0; i < 2; i++ {
			if _, err := tr.Step(b, 0.5); err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
		}
		return params(t, tr)
	}
	want, got := update(BackwardTransposed), update(BackwardTransient)
	var num, den float64
	for name, w := range want {
		for i := range w {
			d := float64(got[name][i] - w[i])
			num += d * d
			den += float64(w[i]) * float64(w[i])
		}
	}
	if rel := math.Sqrt(num / den); !(rel <= 1e-5) {
		t.Fatalf("transient (chunked head) and transposed updates differ by %.2e (relative), want ≤ 1e-5", rel)
	} else {
		t.Logf("relative difference %.2e", rel)
	}
}
