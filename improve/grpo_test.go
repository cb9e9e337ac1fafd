package improve

import (
	"context"
	"testing"

	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// TestGRPORound runs a GRPO round on the demo world: the student samples K
// trajectories per question through the real agent loop and search tool,
// every sample in a group with a reward signal trains (observations masked),
// and the round's adapter — a continuation of the SFT adapter, with its usage
// metadata and the recipe named — loads in llama.cpp and is evaluated on dev.
// The same job run again is a no-op.
func TestGRPORound(t *testing.T) {
	d := newDemoWorld(t)
	ctx := context.Background()
	cfg := testConfig(d)
	cfg.Name, cfg.Learner, cfg.TeacherRuns = "grpo", LearnerGRPO, nil
	cfg.Rounds, cfg.K, cfg.Temperature = 1, 4, 1.0
	cfg.GRPO = GRPOConfig{KL: 0.05, LR: 1e-3, FormatPenalty: 0.5, MaxTokens: 512}
	s, err := store.Open(ctx, d.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := Run(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rounds) != 2 {
		t.Fatalf("%d rounds recorded, want 2", len(res.Rounds))
	}
	r := res.Rounds[1]
	t.Logf("round 1: %d samples, %d correct, %d in groups with a signal, loss %.4f, dev EM %.3f (round 0: %.3f)",
		r.Samples, r.Passed, r.Kept, r.TrainLoss, r.DevEM, res.Rounds[0].DevEM)
	if r.Samples != cfg.K*len(cfg.TrainIndices) {
		t.Errorf("%d samples, want %d", r.Samples, cfg.K*len(cfg.TrainIndices))
	}
	if r.Kept == 0 {
		t.Fatal("no sample group had a reward signal; the test trains nothing")
	}
	if r.AdapterIn != d.SFT || r.Adapter == "" || r.AdapterHash == "" || r.DevRunID == 0 {
		t.Fatalf("round 1: adapter in %q, out %q (%q), dev run %d", r.AdapterIn, r.Adapter, r.AdapterHash, r.DevRunID)
	}
	if in, _ := store.FileHash(d.SFT); in == r.AdapterHash {
		t.Error("the GRPO round wrote the adapter it started from")
	}
	curve, err := s.LossCurve(ctx, r.TrainingRunID)
	if err != nil || len(curve) == 0 {
		t.Fatalf("GRPO loss curve: %d points, %v", len(curve), err)
	}
	u, err := finetune.ReadAdapterUsage(r.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	if u.Recipe != "grpo" || u.Format != "alpaca" {
		t.Errorf("adapter usage: recipe %q, format %q", u.Recipe, u.Format)
	}
	m, err := llama.LoadModel(d.Base, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := m.LoadAdapter(r.Adapter)
	if err != nil {
		t.Fatalf("llama.cpp does not load the GRPO adapter: %v", err)
	}
	a.Close()

	again, err := Run(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Resumed) != 0 || again.Adapter != r.Adapter {
		t.Errorf("the finished job run again resumed rounds %v, adapter %q", again.Resumed, again.Adapter)
	}
	cfg.GRPO.Clip = 0.1
	if _, err := Run(ctx, s, cfg); err == nil {
		t.Error("the job run again with another clip was not refused")
	}
}
