package finetune

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/llama"
)

// TestStepCheckpoint: a loop's trainer checkpointed after step 2 and
// restored into a fresh trainer takes step 3 exactly as the uninterrupted
// trainer does (same adapter bytes); a checkpoint is refused to another
// fingerprint and when its state file changed; Finish writes the output, which
// VerifyOutput then holds to.
func TestStepCheckpoint(t *testing.T) {
	dir := t.TempDir()
	m := loadModel(t, genModel(t, dir, 3, ""), llama.ModelOptions{})
	opts := llama.TrainerOptions{Rank: 4, Targets: llama.TargetsAll, Seed: 2, Threads: 2}
	toks, err := m.Tokenize("Thought: I need to search the film. Action: search[the film]", llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	b := llama.TrainBatch{Tokens: toks, Target: make([]bool, len(toks))}
	for i := 1; i < len(toks); i++ {
		b.Target[i] = true
	}
	newTrainer := func() *llama.Trainer {
		tr, err := llama.NewTrainer(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	step := func(tr *llama.Trainer) float64 {
		r, err := tr.Step(b, 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		return r.Loss
	}
	ckDir := CheckpointDir(filepath.Join(dir, "out.gguf"))

	straight, stopped := newTrainer(), newTrainer()
	ck, err := OpenStepCheckpoint(ckDir, "fp-a")
	if err != nil || ck.Step() != 0 || ck.Done() {
		t.Fatalf("a fresh checkpoint: step %d, done %v (%v)", ck.Step(), ck.Done(), err)
	}
	if err := ck.Begin(7, 9); err != nil {
		t.Fatal(err)
	}
	for s := 1; s <= 2; s++ {
		step(straight)
		loss := step(stopped)
		if err := ck.Save(stopped, s, loss, float64(s)); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := OpenStepCheckpoint(ckDir, "fp-b"); err == nil {
		t.Error("a checkpoint was opened under another fingerprint")
	}
	again, err := OpenStepCheckpoint(ckDir, "fp-a")
	if err != nil {
		t.Fatal(err)
	}
	if run, trun := again.Records(); again.Step() != 2 || run != 7 || trun != 9 || again.Elapsed() != 2 {
		t.Fatalf("reopened: step %d, records %d %d, elapsed %g", again.Step(), run, trun, again.Elapsed())
	}
	resumed := newTrainer()
	if err := again.Restore(resumed); err != nil {
		t.Fatal(err)
	}
	if resumed.Steps() != 2 {
		t.Fatalf("restored trainer at step %d, want 2", resumed.Steps())
	}
	if a, b := step(straight), step(resumed); a != b {
		t.Errorf("step 3: loss %g uninterrupted, %g resumed", a, b)
	}
	outA, outB := filepath.Join(dir, "straight.gguf"), filepath.Join(dir, "out.gguf")
	if err := straight.Save(outA); err != nil {
		t.Fatal(err)
	}
	if err := again.Finish(resumed, outB, 3, 0.5); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(outA)
	bb, _ := os.ReadFile(outB)
	if len(a) == 0 || string(a) != string(bb) {
		t.Error("the adapter after a restore differs from the uninterrupted trainer's")
	}
	done, err := OpenStepCheckpoint(ckDir, "fp-a")
	if err != nil || !done.Done() || done.Step() != 3 || done.Loss() != 0.5 {
		t.Fatalf("after Finish: done %v, step %d, loss %g (%v)", done.Done(), done.Step(), done.Loss(), err)
	}
	if err := done.VerifyOutput(outB); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(outB, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := done.VerifyOutput(outB); err == nil {
		t.Error("a changed output passed VerifyOutput")
	}

	// A state file changed since it was checkpointed is refused.
	bad := CheckpointDir(filepath.Join(dir, "bad.gguf"))
	ck, _ = OpenStepCheckpoint(bad, "fp")
	tr := newTrainer()
	if err := ck.Begin(1, 1); err != nil {
		t.Fatal(err)
	}
	if err := ck.Save(tr, 1, step(tr), 0); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(bad, "state-1.gguf")
	st, _ := os.ReadFile(state)
	st[len(st)-1] ^= 1
	if err := os.WriteFile(state, st, 0o644); err != nil {
		t.Fatal(err)
	}
	ck, _ = OpenStepCheckpoint(bad, "fp")
	if err := ck.Restore(newTrainer()); err == nil {
		t.Error("a changed state file was restored")
	}
}
