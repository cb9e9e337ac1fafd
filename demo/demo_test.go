package demo

import (
	"context"
	"os"
	"testing"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// TestDemoEndToEnd runs the small experiment twice, in two directories, and checks
// what the issue asks of the demo: the fine-tuned student beats the prompted one on
// dev, every episode of every run is in the store, the adapters are LoRA GGUFs that
// reload, and the same seed gives the same numbers. A third run in the first
// directory finds every stage cached.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo trains two adapters (about a minute)")
	}
	ctx := context.Background()
	cfg := SmallConfig()
	dirA, dirB := t.TempDir(), t.TempDir()
	a, err := Run(ctx, dirA, cfg, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	row := func(r *Result, run string) Row {
		for _, x := range r.Rows {
			if x.Run == run {
				return x
			}
		}
		t.Fatalf("no row for run %s", run)
		return Row{}
	}
	prompted, tuned := row(a, "eval-prompted"), row(a, "eval-lora-react")
	t.Logf("EM prompted %.3f, LoRA ReAct %.3f, LoRA multi %.3f, + rejection sampling %.3f, + GRPO %.3f, teacher %.3f",
		prompted.EM, tuned.EM, row(a, "eval-lora-multi").EM, row(a, "eval-lora-rs").EM, row(a, "eval-lora-grpo").EM, row(a, "eval-teacher").EM)
	if !(tuned.EM > prompted.EM) {
		t.Errorf("fine-tuned EM %.3f is not higher than the prompted student's %.3f", tuned.EM, prompted.EM)
	}

	// Every episode of every run is in the store.
	st, err := store.Open(ctx, a.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, r := range a.Rows {
		run, err := st.RunByName(ctx, r.Run)
		if err != nil {
			t.Fatal(err)
		}
		eps, err := st.Episodes(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != cfg.World.DevQuestions || r.N != len(eps) {
			t.Errorf("run %s: %d episodes (row says %d), want %d", r.Run, len(eps), r.N, cfg.World.DevQuestions)
		}
		for _, ep := range eps {
			steps, err := st.Steps(ctx, ep.ID)
			if err != nil || len(steps) == 0 || len(steps) != ep.Turns {
				t.Errorf("run %s episode %d: %d steps for %d turns (%v)", r.Run, ep.ID, len(steps), ep.Turns, err)
				break
			}
		}
	}
	for _, m := range []string{"react", "cot", "reflexion"} {
		run, err := st.RunByName(ctx, "teacher-"+m)
		if err != nil {
			t.Fatal(err)
		}
		eps, _ := st.Episodes(ctx, run.ID)
		if len(eps) != cfg.World.TrainQuestions {
			t.Errorf("teacher-%s: %d episodes, want %d", m, len(eps), cfg.World.TrainQuestions)
		}
	}

	// The adapters are LoRA GGUFs that llama.cpp reloads onto the student.
	m, err := llama.LoadModel(a.Base, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, path := range a.Adapters {
		ad, err := m.LoadAdapter(path)
		if err != nil {
			t.Fatalf("adapter %s: %v", name, err)
		}
		ad.Close()
	}

	// Same seed, same numbers.
	b, err := Run(ctx, dirB, cfg, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Rows) != len(b.Rows) {
		t.Fatalf("%d rows vs %d", len(a.Rows), len(b.Rows))
	}
	for i := range a.Rows {
		x, y := a.Rows[i], b.Rows[i]
		if x.Run != y.Run || x.EM != y.EM || x.F1 != y.F1 || x.Turns != y.Turns || x.N != y.N {
			t.Errorf("run %s differs between two runs of the same seed: %+v vs %+v", x.Run, x, y)
		}
	}

	// A rerun finds everything cached.
	c, err := Run(ctx, dirA, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Stages {
		if !s.Cached && s.Name != "report" {
			t.Errorf("stage %q ran again on a rerun", s.Name)
		}
	}
}
