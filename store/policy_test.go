package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestPolicySteps: a GRPO run's per-step figures are written to a real
// database file, read back in step order after a reopen (a step re-logged by a
// resume replaces the first), keep "no reference" apart from a KL of 0, refuse
// a clipped fraction outside [0, 1], and go with their run.
func TestPolicySteps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fireact.db")
	s := openAt(t, path)
	tr := Run{Name: "job/r1/grpo", Kind: KindTrain, Model: "m.gguf"}
	if _, err := s.CreateRun(ctx, &tr); err != nil {
		t.Fatal(err)
	}
	job := TrainingRun{RunID: tr.ID}
	if _, err := s.CreateTrainingRun(ctx, &job); err != nil {
		t.Fatal(err)
	}
	first := []PolicyStep{
		{Step: 2, Rollouts: 5, Tokens: 90, Reward: 0.4, Surrogate: 0.1, Clipped: 0.05, KL: 0.002, HasKL: true, Objective: 0.0999},
		{Step: 1, Rollouts: 6, Tokens: 120, Reward: 0.5, Surrogate: -0.2, Clipped: 0, KL: 0, HasKL: true, Objective: -0.2},
	}
	if err := s.AddPolicySteps(ctx, job.ID, first); err != nil {
		t.Fatal(err)
	}
	redo := PolicyStep{Step: 2, Rollouts: 5, Tokens: 90, Reward: 0.4, Surrogate: 0.3, Clipped: 0.1, KL: 0.004, HasKL: true, Objective: 0.2998}
	if err := s.AddPolicySteps(ctx, job.ID, []PolicyStep{redo, {Step: 3, Rollouts: 1, Tokens: 7, Reward: 1, Objective: 0.5, Surrogate: 0.5}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	got, err := s.PolicyCurve(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != first[1] || got[1] != redo || got[2].HasKL || got[2].KL != 0 || got[2].Reward != 1 {
		t.Fatalf("policy curve after a reopen: %+v", got)
	}
	if err := s.AddPolicySteps(ctx, job.ID, []PolicyStep{{Step: 4, Clipped: 1.5}}); err == nil {
		t.Error("a clipped fraction of 1.5 was recorded")
	}
	if got, _ := s.PolicyCurve(ctx, job.ID); len(got) != 3 {
		t.Errorf("a refused batch left %d steps, want 3", len(got))
	}
	if err := s.DeleteRun(ctx, tr.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PolicyCurve(ctx, job.ID); err != nil || len(got) != 0 {
		t.Errorf("after its run was deleted: %d policy steps (%v)", len(got), err)
	}
}
