package finetune

import (
	"math"
	"testing"

	"github.com/fireact/fireact/llama"
)

func TestGroupAdvantages(t *testing.T) {
	cases := []struct {
		name    string
		rewards []float64
		group   []int
		want    []float64
	}{
		{"half right", []float64{1, 0, 0, 1}, []int{0, 0, 0, 0}, []float64{1, -1, -1, 1}},
		{"all right: no signal", []float64{1, 1, 1}, []int{4, 4, 4}, []float64{0, 0, 0}},
		{"groups apart", []float64{1, 0, 0.5, 0.5, 1, 0}, []int{0, 0, 1, 1, 2, 2}, []float64{1, -1, 0, 0, 1, -1}},
		{"one right of four", []float64{0, 0, 1, 0}, []int{0, 0, 0, 0}, []float64{-1 / math.Sqrt(3), -1 / math.Sqrt(3), math.Sqrt(3), -1 / math.Sqrt(3)}},
	}
	for _, c := range cases {
		got, err := GroupAdvantages(c.rewards, c.group)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(got[i]-c.want[i]) > 1e-5 {
				t.Errorf("%s: advantages %v, want %v", c.name, got, c.want)
				break
			}
		}
	}
	if _, err := GroupAdvantages([]float64{math.NaN()}, []int{0}); err == nil {
		t.Error("a NaN reward was accepted")
	}
	if _, err := GroupAdvantages([]float64{1}, nil); err == nil {
		t.Error("rewards without groups were accepted")
	}
}

func TestPolicyWeightsClip(t *testing.T) {
	lr := func(rho float64) float32 { return float32(math.Log(rho)) }
	cases := []struct {
		name     string
		adv, rho float64
		want     float64 // weight without KL
	}{
		{"inside the range", 1, 1.1, 1.1},
		{"good token already pushed up: clipped", 1, 1.5, 0},
		{"good token pushed down: still pulls", 1, 0.5, 0.5},
		{"bad token already pushed down: clipped", -1, 0.5, 0},
		{"bad token pushed up: still pushes", -1, 1.5, -1.5},
		{"at the rollout policy", -2, 1, -2},
	}
	for _, c := range cases {
		w, st, err := PolicyWeights(PolicyLoss{Clip: 0.2}, []float32{float32(c.adv)}, []float32{lr(c.rho)}, []float32{0}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(w[0])-c.want) > 1e-5 {
			t.Errorf("%s: weight %.4f, want %.4f", c.name, w[0], c.want)
		}
		if clipped := c.want == 0; (st.Clipped == 1) != clipped {
			t.Errorf("%s: clipped fraction %v", c.name, st.Clipped)
		}
	}
	// The KL term pulls toward the reference: a token the policy likes more
	// than the reference (lp > ref) gets a negative weight, one it likes less
	// a positive one; none at the reference.
	w, st, err := PolicyWeights(PolicyLoss{KL: 0.5}, []float32{0, 0, 0}, []float32{-1, -3, -2}, []float32{-1, -3, -2}, []float32{-2, -2, -2})
	if err != nil {
		t.Fatal(err)
	}
	if !(w[0] < 0 && w[1] > 0 && w[2] == 0) || st.KL <= 0 {
		t.Errorf("KL weights %v (KL %.4f): want negative, positive, zero", w, st.KL)
	}
	if _, _, err := PolicyWeights(PolicyLoss{KL: 0.1}, []float32{1}, []float32{0}, []float32{0}, nil); err == nil {
		t.Error("a KL penalty without reference log-probabilities was accepted")
	}
}

// TestPolicyGradientMatchesObjective is the finite-difference check of GRPO's
// loss through the real training graph: away from the rollout policy (some
// ratios clipped) and with a KL penalty, one SGD step on llama's weighted
// loss with PolicyWeights' weights moves each parameter by lr times the
// gradient of the clipped objective that a central difference measures.
func TestPolicyGradientMatchesObjective(t *testing.T) {
	dir := t.TempDir()
	m := loadModel(t, genModel(t, dir, 5, ""), llama.ModelOptions{})
	tr, err := llama.NewTrainer(m, llama.TrainerOptions{Rank: 4, Targets: llama.TargetsAll, Optimizer: llama.OptimizerSGD, Seed: 4, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	toks, err := m.Tokenize("Thought: I need to search the film. Action: search[the film] Observation: The film was directed by Ann. Thought: The answer is Ann. Action: finish[Ann]", llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	b := llama.TrainBatch{Tokens: toks, Target: make([]bool, len(toks))}
	for i := 1; i < len(toks); i++ {
		b.Target[i] = i%5 != 0 // a few unscored tokens, as observations are
	}
	for i := 0; i < 2; i++ { // B off zero
		if _, err := tr.Step(b, 0.05); err != nil {
			t.Fatal(err)
		}
	}
	old, err := tr.TokenLogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	adv := make([]float32, len(old))
	for i := range adv {
		adv[i] = []float32{1.2, -0.8, 0.5}[i%3]
	}
	// Move the policy away from the rollout's so that ratios differ from 1.
	for i := 0; i < 3; i++ {
		if _, err := tr.Step(b, 0.05); err != nil {
			t.Fatal(err)
		}
	}
	ref := make([]float32, len(old))
	for i := range ref {
		ref[i] = old[i] - 0.3
	}
	cfg := PolicyLoss{Clip: 0.05, KL: 0.2}
	objective := func() float64 {
		lp, err := tr.TokenLogProbs(b)
		if err != nil {
			t.Fatal(err)
		}
		_, st, err := PolicyWeights(cfg, adv, lp, old, ref)
		if err != nil {
			t.Fatal(err)
		}
		return st.Surrogate - cfg.KL*st.KL
	}
	lp, _ := tr.TokenLogProbs(b)
	w, st, err := PolicyWeights(cfg, adv, lp, old, ref)
	if err != nil {
		t.Fatal(err)
	}
	if st.Clipped == 0 || st.Clipped == 1 {
		t.Fatalf("clipped fraction %.2f: the check needs both clipped and unclipped tokens", st.Clipped)
	}
	t.Logf("clipped %.0f%% of %d tokens, KL %.4f", 100*st.Clipped, len(w), st.KL)
	wb := b
	wb.Weights = make([]float32, len(toks))
	k := 0
	for i := range toks {
		if b.Target[i] {
			wb.Weights[i] = w[k]
			k++
		}
	}
	// The step ascends J, so the loss whose gradient it carries is −J.
	loss := func() (float64, error) { return -objective(), nil }
	for _, name := range []string{"blk.0.attn_q.weight.lora_b", "blk.1.ffn_up.weight.lora_b", "blk.0.attn_v.weight.lora_a"} {
		p, err := tr.ProbeGradient(name, wb, 1e-3, 1e-2, loss)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Agrees(0.05, 1e-4) {
			t.Errorf("%s%v of the negated objective", name, p)
		} else {
			t.Logf("%s%v", name, p)
		}
	}
}
