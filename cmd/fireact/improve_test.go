package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/demo"
	"github.com/fireact/fireact/improve/improvetest"
	"github.com/fireact/fireact/store"
)

// TestImproveCommand runs `fireact improve` end to end on the small demo
// world (the world of `fireact demo --small`, in a store with its corpus, the
// oracle teacher's ReAct run and a tiny student with an SFT adapter): it
// prints a table of rounds 0 and 1, writes round 1's adapter, records the
// rounds, and `fireact report` shows them. Bad flags are refused by name.
func TestImproveCommand(t *testing.T) {
	wc := demo.SmallConfig().World
	d := improvetest.NewWorld(t, wc)
	out := filepath.Join(d.Dir, "improve-out")
	args := []string{"improve", "--db", d.DB, "--run", "cli-star", "--dir", out, "--base", d.Base, "--lora", d.SFT,
		"--teacher", improvetest.TeacherRun, "--task", "world", "--small", "--corpus", d.Corpus, "--order", "natural",
		"--train-limit", "6", "--dev-limit", "4", "--rounds", "1", "--k", "2", "--temperature", "0.8",
		"--max-tokens", "48", "--max-turns", "4", "--grammar", "--steps", "4", "--lr", "3e-3", "--cutoff", "256",
		"--batch-tokens", "256", "--targets", "all", "-j", "4", "-t", "1"}
	stdout, stderr, err := runImprove(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	t.Logf("stdout:\n%s", stdout)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "round") || !strings.HasPrefix(lines[1], "0 ") || !strings.HasPrefix(lines[2], "1 ") ||
		!strings.Contains(lines[2], " 12 ") || lines[3] != "adapter: "+filepath.Join(out, "round-1.lora.gguf") {
		t.Errorf("output:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "round-1.lora.gguf")); err != nil {
		t.Error(err)
	}
	rounds, err := d.Store.Rounds(t.Context(), "cli-star")
	if err != nil || len(rounds) != 2 || rounds[1].Status != store.StatusDone || rounds[1].Samples != 12 || rounds[1].K != 2 {
		t.Errorf("rounds %+v (%v)", rounds, err)
	}
	rep, _, err := runImprove("report", "--db", d.DB)
	if err != nil || !strings.Contains(rep, "Improve rounds") || !strings.Contains(rep, "cli-star") || !strings.Contains(rep, "12 (k=2)") {
		t.Errorf("report (%v):\n%s", err, rep)
	}

	for _, bad := range []struct {
		flag, value, want string
	}{
		{"--mix", "teacher=1,student=1", `mix "student"`},
		{"--temperature=-1", "", "temperature -1"},
		{"--task", "nosuchtask", "nosuchtask"},
	} {
		a := append(append([]string{}, args...), bad.flag)
		if bad.value != "" {
			a = append(a, bad.value)
		}
		a[4] = "cli-bad" // a new job name, so that nothing resumes
		if _, stderr, err := runImprove(a...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %s: %v\n%s, want an error with %q", bad.flag, bad.value, err, stderr, bad.want)
		}
	}
}

// runImprove runs the CLI, returning its standard output and error output.
func runImprove(args ...string) (string, string, error) {
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(flagsFirst(app, append([]string{"fireact"}, args...)))
	return out.String(), errOut.String(), err
}

// TestRLCommand runs `fireact rl` (GRPO rounds) end to end on the small demo
// world without teacher data: one round of 3 samples per question trains the
// SFT adapter further and evaluates it; its loss curve is recorded, and
// rejection sampling's flags are refused.
func TestRLCommand(t *testing.T) {
	d := improvetest.NewWorld(t, demo.SmallConfig().World)
	out := filepath.Join(d.Dir, "rl-out")
	args := []string{"rl", "--db", d.DB, "--run", "cli-grpo", "--dir", out, "--base", d.Base, "--lora", d.SFT,
		"--task", "world", "--small", "--corpus", d.Corpus, "--order", "natural", "--train-limit", "6", "--dev-limit", "4",
		"--rounds", "1", "--k", "3", "--temperature", "1", "--max-tokens", "48", "--max-turns", "4", "--grammar",
		"--lr", "1e-3", "--kl", "0.05", "--format-penalty", "0.5", "--batch-tokens", "512", "-j", "6", "-t", "1"}
	stdout, stderr, err := runImprove(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	t.Logf("stdout:\n%s", stdout)
	if !strings.Contains(stderr, "grpo step 1:") || !strings.Contains(stdout, "adapter: "+filepath.Join(out, "round-1.lora.gguf")) {
		t.Errorf("no GRPO step or no adapter:\n%s\n%s", stdout, stderr)
	}
	rounds, err := d.Store.Rounds(t.Context(), "cli-grpo")
	if err != nil || len(rounds) != 2 || rounds[1].Status != store.StatusDone || rounds[1].Samples != 18 || rounds[1].TrainingRunID == 0 {
		t.Fatalf("rounds %+v (%v)", rounds, err)
	}
	if curve, err := d.Store.LossCurve(t.Context(), rounds[1].TrainingRunID); err != nil || len(curve) == 0 {
		t.Errorf("loss curve %v (%v)", curve, err)
	}
	bad := append(append([]string{}, args...), "--mix", "teacher=1")
	bad[4] = "cli-grpo-bad"
	if _, _, err := runImprove(bad...); err == nil || !strings.Contains(err.Error(), "rejection sampling's") {
		t.Errorf("rl with --mix: %v", err)
	}
}
