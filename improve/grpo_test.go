package improve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestGRPOResume cancels a GRPO round after its first step and runs the job
// again: the phase continues after step 1 from its checkpoint, into the same
// training run, and writes the adapter, bit for bit, that the phase run
// without an interruption writes from the same samples (the round rewound in
// the store, its checkpoint, adapter and dev run removed). Meanwhile the checkpoint is
// refused to the job with another clip and to another job writing into the
// same directory, and stays as it was. A phase whose checkpoint says it
// finished is not trained again.
func TestGRPOResume(t *testing.T) {
	start := time.Now()
	d := newDemoWorld(t)
	t.Logf("set-up: %s", time.Since(start).Round(time.Millisecond))
	lap := time.Now()
	logLap := func(what string) {
		t.Logf("%s: %s", what, time.Since(lap).Round(time.Millisecond))
		lap = time.Now()
	}
	ctx := context.Background()
	cfg := testConfig(d)
	cfg.Name, cfg.Learner, cfg.TeacherRuns = "grpo", LearnerGRPO, nil
	cfg.Rounds, cfg.K, cfg.Temperature, cfg.TrainIndices, cfg.DevIndices = 1, 4, 1.0, allIndices(4), allIndices(2)
	cfg.GRPO = GRPOConfig{KL: 0.05, LR: 1e-3, FormatPenalty: 0.5, MaxTokens: 1024}
	out := filepath.Join(cfg.Dir, "round-1.lora.gguf")
	ckDir := finetune.CheckpointDir(out)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg.OnEvent = func(e Event) {
		if e.Phase == store.PhaseTrain && e.Done == 1 {
			cancel()
		}
	}
	if _, err := Run(cctx, d.Store, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("job cancelled after its first GRPO step: %v, want context.Canceled", err)
	}
	rounds, err := d.Store.Rounds(ctx, cfg.Name)
	if err != nil || len(rounds) != 2 || rounds[1].Status != store.StatusInterrupted || rounds[1].Phase != store.PhaseTrain {
		t.Fatalf("rounds after the cancel: %+v (%v)", rounds, err)
	}
	run, err := d.Store.RunByName(ctx, "grpo/r1/grpo")
	if err != nil || run.Status != store.StatusInterrupted {
		t.Fatalf("the GRPO run after the cancel: %+v (%v)", run, err)
	}
	logLap("the process cancelled after step 1")
	progress := checkpointStep(t, ckDir)
	if progress != 1 {
		t.Fatalf("checkpoint at step %d after a cancel at step 1", progress)
	}

	cfg.OnEvent = nil
	clip := cfg
	clip.GRPO.Clip = 0.1
	if _, err := Run(ctx, d.Store, clip); err == nil || !strings.Contains(err.Error(), "grpo") {
		t.Errorf("the job resumed with another clip: %v, want a refusal", err)
	}
	other := cfg
	other.Name = "grpo-other"
	if _, err := Run(ctx, d.Store, other); err == nil || !strings.Contains(err.Error(), "holds a checkpoint of another training") {
		t.Errorf("another job in the same directory: %v, want the checkpoint refused", err)
	}
	logLap("the two refused jobs")
	if s := checkpointStep(t, ckDir); s != 1 {
		t.Fatalf("the refused jobs moved the checkpoint to step %d", s)
	}

	var first *Event
	cfg.OnEvent = func(e Event) {
		if e.Phase == store.PhaseTrain && e.Done == 1 && first == nil {
			first = &e
		}
	}
	res, err := Run(ctx, d.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	logLap("the resumed process")
	resumed := res.Rounds[1]
	if len(res.Resumed) != 1 || res.Resumed[0] != 1 || resumed.TrainingRunID == 0 {
		t.Fatalf("resumed rounds %v, round 1 %+v", res.Resumed, resumed)
	}
	curve, err := d.Store.LossCurve(ctx, resumed.TrainingRunID)
	if err != nil {
		t.Fatal(err)
	}
	if first == nil || first.Total != len(curve)-1 {
		t.Fatalf("the resumed phase took %+v of %d steps: it did not continue after step 1", first, len(curve))
	}
	if again, _ := d.Store.RunByName(ctx, "grpo/r1/grpo"); again.ID != run.ID || again.Status != store.StatusDone {
		t.Errorf("the resumed phase logged to run %d (%s), the interrupted one was %d", again.ID, again.Status, run.ID)
	}
	policy, err := d.Store.PolicyCurve(ctx, resumed.TrainingRunID)
	if err != nil || len(policy) != len(curve) {
		t.Fatalf("%d policy steps for %d loss points (%v)", len(policy), len(curve), err)
	}
	for i, p := range curve {
		if p.Step != i+1 || policy[i].Step != i+1 {
			t.Fatalf("step %d of the resumed curves is %d, %d: a step missing or twice", i+1, p.Step, policy[i].Step)
		}
	}

	// The same phase uninterrupted, from the same samples.
	rewound := resumed
	rewound.Status, rewound.Phase = store.StatusInterrupted, store.PhaseTrain
	if err := d.Store.SaveRound(ctx, &rewound); err != nil {
		t.Fatal(err)
	}
	dev, err := d.Store.RunByName(ctx, "grpo/r1/dev")
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(os.RemoveAll(ckDir), os.Remove(out), d.Store.DeleteRun(ctx, dev.ID)); err != nil {
		t.Fatal(err)
	}
	first = nil
	straight, err := Run(ctx, d.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	logLap("the uninterrupted phase")
	s := straight.Rounds[1]
	t.Logf("%d steps; adapter resumed after step 1 %s, uninterrupted %s", len(curve), resumed.AdapterHash[:12], s.AdapterHash[:12])
	if first == nil || first.Total != len(curve) {
		t.Fatalf("the rewound round took %+v of %d steps: it did not redo its GRPO phase whole", first, len(curve))
	}
	if s.AdapterHash != resumed.AdapterHash {
		t.Errorf("the resumed adapter differs from an uninterrupted phase's (%s vs %s)", resumed.AdapterHash, s.AdapterHash)
	}
	scurve, _ := d.Store.LossCurve(ctx, s.TrainingRunID)
	if len(scurve) != len(curve) {
		t.Fatalf("uninterrupted: %d steps, resumed %d", len(scurve), len(curve))
	}
	for i := range curve {
		if scurve[i].Loss != curve[i].Loss {
			t.Errorf("step %d: loss %g uninterrupted, %g resumed", i+1, scurve[i].Loss, curve[i].Loss)
		}
	}

	// A phase that finished before its round could record it (a kill in
	// between) is not trained again: its checkpoint says done.
	rewound = s
	rewound.Status, rewound.Phase = store.StatusInterrupted, store.PhaseTrain
	if err := d.Store.SaveRound(ctx, &rewound); err != nil {
		t.Fatal(err)
	}
	first = nil
	final, err := Run(ctx, d.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f := final.Rounds[1]; first != nil || f.AdapterHash != s.AdapterHash || f.TrainingRunID != s.TrainingRunID || f.Status != store.StatusDone {
		t.Errorf("the finished phase rerun: step event %+v, round %+v", first, f)
	}
}

// checkpointStep is the step the checkpoint in dir is at, read from its
// progress file as a person would.
func checkpointStep(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "progress.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Step int }
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p.Step
}
