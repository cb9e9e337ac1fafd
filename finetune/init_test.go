package finetune

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama"
)

// TestInitAdapter: a job started from another job's adapter starts where that
// one ended (its first loss is the trained adapter's, not the base's), takes
// the adapter's rank and alpha when none are given, records the adapter and
// its hash with its settings, and is refused with a clear error for a rank
// that differs, for full training and for a file that is not an adapter.
func TestInitAdapter(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte(strings.Repeat("Once upon a time there was a little boy named Tim . ", 20)), 0o644)
	base := genModel(t, dir, 7, "")
	first := Config{Base: base, Out: filepath.Join(dir, "first.gguf"), TextFile: text, Cutoff: 64, MaxTokens: 64, Val: -1,
		MaxSteps: 30, LR: 1e-2, Warmup: -1, Rank: 4, Alpha: 8, Seed: 1, Threads: 1, Targets: llama.TargetsAll}
	a, err := Run(ctx, s, first)
	if err != nil {
		t.Fatal(err)
	}
	curveA, _ := s.LossCurve(ctx, a.TrainingRunID)

	next := first
	next.Out, next.InitAdapter, next.MaxSteps, next.Rank, next.Alpha = filepath.Join(dir, "next.gguf"), first.Out, 3, 0, 0
	b, err := Run(ctx, s, next)
	if err != nil {
		t.Fatal(err)
	}
	curveB, _ := s.LossCurve(ctx, b.TrainingRunID)
	fresh, lastA, startB := curveA[0].Loss, curveA[len(curveA)-1].Loss, curveB[0].Loss
	t.Logf("first job: loss %.3f -> %.3f; job from its adapter starts at %.3f", fresh, lastA, startB)
	if !(fresh-lastA > 0.5) || startB > fresh-0.5*(fresh-lastA) {
		t.Errorf("the job from the adapter starts at loss %.3f, the fresh one at %.3f and ended at %.3f: the adapter was not loaded", startB, fresh, lastA)
	}
	trun, err := s.TrainingRun(ctx, b.TrainingRunID)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(first.Out)
	for _, want := range []string{`"rank":4`, `"alpha":8`, `"init_adapter":"` + abs + `"`, `"init_adapter_sha256":"` + a.OutHash + `"`} {
		if !strings.Contains(trun.Hyperparams, want) {
			t.Errorf("hyperparams lack %s: %s", want, trun.Hyperparams)
		}
	}
	m := loadModel(t, base, llama.ModelOptions{})
	ad, err := m.LoadAdapter(next.Out)
	if err != nil {
		t.Fatal(err)
	}
	if ad.Rank() != 4 || ad.Alpha() != 8 {
		t.Errorf("adapter trained from the init adapter: rank %d alpha %g, want 4 and 8", ad.Rank(), ad.Alpha())
	}
	ad.Close()

	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Rank = 8 }, "has rank 4, not the 8"},
		{func(c *Config) { c.Alpha = 4 }, "has alpha 8, not the 4"},
		{func(c *Config) { c.Full = true }, "LoRA training, not full training"},
		{func(c *Config) { c.InitAdapter = base }, "init adapter: " + base + " for " + base},
		{func(c *Config) { c.InitAdapter = filepath.Join(dir, "missing.gguf") }, "missing.gguf"},
	} {
		c := next
		c.Out = filepath.Join(dir, "bad.gguf")
		tc.edit(&c)
		if _, err := Run(ctx, s, c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error with %q", err, tc.want)
		}
	}
}
