package llama

import (
	"math"
	"path/filepath"
	"testing"
)

// weighted returns b with per-token weights w(i) on its targets.
func weighted(b TrainBatch, w func(i int) float32) TrainBatch {
	b.Weights = make([]float32, len(b.Tokens))
	for i := range b.Weights {
		if b.Target[i] {
			b.Weights[i] = w(i)
		}
	}
	return b
}

// TestWeightedLoss checks the per-token weighted loss that reward training
// uses: with every weight 1 it is the mean NLL; its gradient, with weights of
// both signs as advantages have, matches a central finite difference of the
// loss; and a negative weight pushes its tokens' likelihood down.
func TestWeightedLoss(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 4), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll | TargetOutput, Optimizer: OptimizerSGD, Seed: 9})
	b := agentBatch(t, m, trainText)
	for i := 0; i < 3; i++ { // move B off zero so A has a gradient too
		if _, err := tr.Step(b, 0.05); err != nil {
			t.Fatal(err)
		}
	}

	plain, err := tr.Eval(b)
	if err != nil {
		t.Fatal(err)
	}
	ones, err := tr.Eval(weighted(b, func(int) float32 { return 1 }))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(plain.Loss-ones.Loss) > 1e-4*plain.Loss || plain.Scored != ones.Scored {
		t.Fatalf("weights of 1: loss %.6f over %d tokens, the mean NLL is %.6f over %d", ones.Loss, ones.Scored, plain.Loss, plain.Scored)
	}

	// Advantages of both signs, as a group of rollouts has them.
	wb := weighted(b, func(i int) float32 { return []float32{1.5, -0.7, 0.3, -1.2}[i%4] })
	checkGradients(t, tr, wb, []string{"blk.0.attn_q.weight.lora_b", "blk.1.ffn_down.weight.lora_b", "output.weight.lora_b",
		"blk.0.attn_k.weight.lora_a", "blk.1.attn_output.weight.lora_a"})

	// A negative weight is a penalty: steps on it make the text less likely.
	start, _ := tr.Eval(b)
	neg := weighted(b, func(int) float32 { return -1 })
	for i := 0; i < 3; i++ {
		if _, err := tr.Step(neg, 0.05); err != nil {
			t.Fatal(err)
		}
	}
	end, _ := tr.Eval(b)
	if end.Loss <= start.Loss {
		t.Errorf("steps with weight -1 took the NLL from %.4f to %.4f; want it higher", start.Loss, end.Loss)
	}

	bad := weighted(b, func(int) float32 { return float32(math.NaN()) })
	if _, err := tr.Eval(bad); err == nil {
		t.Error("a NaN weight was accepted")
	}
}

// TestTrainerTokenLogProbs checks the policy log-probabilities of the
// training graph against llama_decode's for the same weights: the trainer's
// adapter, saved and loaded into an inference context, scores the same
// tokens to the same values.
func TestTrainerTokenLogProbs(t *testing.T) {
	dir := t.TempDir()
	m := loadPath(t, trainModel(t, dir, "base", 64, 4), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll, Seed: 3})
	b := agentBatch(t, m, trainText)
	for i := 0; i < 4; i++ {
		if _, err := tr.Step(b, 0.02); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tr.TokenLogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	res, _ := tr.Eval(b)
	if len(got) != res.Scored {
		t.Fatalf("%d log-probabilities for %d scored tokens", len(got), res.Scored)
	}
	var nll float64
	for _, lp := range got {
		nll -= float64(lp)
	}
	if nll /= float64(len(got)); math.Abs(nll-res.Loss) > 1e-4*res.Loss {
		t.Errorf("mean -log p %.6f, the step's loss %.6f", nll, res.Loss)
	}
	path := filepath.Join(dir, "a.gguf")
	if err := tr.Save(path); err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadAdapter(path)
	if err != nil {
		t.Fatal(err)
	}
	// An F32 cache and no flash attention, as TestTrainMatchesDecodeBitExact:
	// the default F16 cache alone moves log p by ~1e-3.
	c, err := m.NewContext(ContextOptions{NCtx: 512, Threads: 2, TypeK: "f32", TypeV: "f32", FlashAttn: FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetAdapter(a, 1); err != nil {
		t.Fatal(err)
	}
	all, err := c.ScoreTokens(b.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for i := 1; i < len(b.Tokens); i++ {
		if !b.Target[i] {
			continue
		}
		if math.Abs(float64(got[k]-all[i-1])) > 1e-5 {
			t.Errorf("token %d: training graph log p %.5f, llama_decode %.5f", i, got[k], all[i-1])
		}
		k++
	}
}
