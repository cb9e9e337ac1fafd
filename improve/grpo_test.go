package improve

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/report"
)

// TestGRPORound runs a GRPO round on the demo world: the student samples K
// trajectories per question through the real agent loop and search tool,
// every sample in a group with a reward signal trains (observations masked),
// and the round's adapter — a continuation of the SFT adapter, with its usage
// metadata and the recipe named — loads in llama.cpp and is evaluated on dev.
// Each step's reward, KL, clipped fraction and objective are in the store and
// drawn by the report. The same job run again is a no-op.
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
	checkPolicyCurve(t, s, r, curve)
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

// checkPolicyCurve checks the policy-gradient figures a GRPO round recorded
// against what the round did, and that the report draws them. The reference
// is the round-0 student, which is the adapter the round starts from: the
// first step's KL is 0 and, on-policy, nothing is clipped yet.
func checkPolicyCurve(t *testing.T, s *store.Store, r store.Round, loss []store.LossPoint) {
	t.Helper()
	ctx := context.Background()
	steps, err := s.PolicyCurve(ctx, r.TrainingRunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != len(loss) {
		t.Fatalf("%d policy steps for %d loss points", len(steps), len(loss))
	}
	rollouts, moved := 0, false
	for i, p := range steps {
		t.Logf("step %d: %d rollouts, %d tokens, reward %.3f, surrogate %.4f, KL %.5f, clipped %.3f, objective %.4f",
			p.Step, p.Rollouts, p.Tokens, p.Reward, p.Surrogate, p.KL, p.Clipped, p.Objective)
		rollouts += p.Rollouts
		if p.Step != i+1 || !p.HasKL || p.KL < 0 || p.Clipped < 0 || p.Clipped > 1 || p.Reward < -0.5 || p.Reward > 1 {
			t.Errorf("step %d out of range: %+v", i+1, p)
		}
		if math.Abs(p.Objective+loss[i].Loss) > 1e-12 {
			t.Errorf("step %d: objective %g, loss %g: the loss is the objective's negative", p.Step, p.Objective, loss[i].Loss)
		}
		moved = moved || p.KL > 1e-6
	}
	if rollouts != r.Kept {
		t.Errorf("the steps trained on %d rollouts, the round kept %d (one epoch: each once)", rollouts, r.Kept)
	}
	if first := steps[0]; first.KL > 1e-6 || first.Clipped != 0 {
		t.Errorf("first step at the reference: KL %g, clipped %g; want 0 and 0", first.KL, first.Clipped)
	}
	if !moved {
		t.Error("the KL to the reference stayed 0: the steps did not move the policy")
	}

	run, err := s.RunByName(ctx, fmt.Sprintf("%s/r%d/grpo", r.Job, r.Round))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := report.Build(ctx, s, report.Options{Runs: []string{run.Name}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Policy) != 1 || len(rep.Policy[0].Points) != len(steps) || rep.Policy[0].Points[1].KL == nil ||
		*rep.Policy[0].Points[1].KL != steps[1].KL {
		t.Fatalf("report policy curves: %+v", rep.Policy)
	}
	var b bytes.Buffer
	if err := report.HTML(&b, rep); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, want := range []string{`<svg id="plot-reward"`, `<svg id="plot-kl"`, `<svg id="plot-clipped"`,
		fmt.Sprintf("%s step 2: %.4g</title>", run.Name, steps[1].Reward)} {
		if !strings.Contains(html, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	b.Reset()
	if err := report.Text(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Policy-gradient steps") || !strings.Contains(b.String(), fmt.Sprintf("%.3f", steps[0].Reward)) {
		t.Errorf("the text report lacks the policy steps:\n%s", b.String())
	}
}
