package finetune

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
)

// killEnv names the directory of the job a re-executed test binary runs.
const killEnv = "FIREACT_FINETUNE_KILL_CHILD"

const killSteps = 250

// killConfig is the job of TestKillResume, in dir (model, text, output).
func killConfig(dir string) Config {
	return Config{Base: filepath.Join(dir, "gen.gguf"), Out: filepath.Join(dir, "out", "adapter.gguf"),
		TextFile: filepath.Join(dir, "text.txt"), Cutoff: 64, MaxTokens: 128, Val: 2, EvalEvery: 100,
		SaveEvery: 7, MaxSteps: killSteps, LR: 2e-3, Schedule: ScheduleCosine, Rank: 4,
		Targets: llama.TargetsAll, Seed: 11, Threads: 1}
}

// TestKillResume starts training in a child process, kills it with SIGKILL once
// its first checkpoint is on disk, and runs the same job again: it must resume
// from the last checkpoint, finish with the planned step count, leave a loss curve
// with every step exactly once, and write the adapter an uninterrupted run writes.
func TestKillResume(t *testing.T) {
	if dir := os.Getenv(killEnv); dir != "" {
		// The child: train until killed.
		s := openStore(t, dir)
		if _, err := Run(context.Background(), s, killConfig(dir)); err != nil {
			t.Fatal(err)
		}
		return
	}
	dir := t.TempDir()
	text := strings.Repeat("Once upon a time there was a little girl named Lily . She went to the park with her dog . ", 20)
	if err := os.WriteFile(filepath.Join(dir, "text.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgGen := modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 512, Seed: 21}
	if err := modelgen.WriteLlama(filepath.Join(dir, "gen.gguf"), cfgGen); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "out"), 0o755)
	cfg := killConfig(dir)

	child := exec.Command(os.Args[0], "-test.run=^TestKillResume$")
	child.Env = append(os.Environ(), killEnv+"="+dir)
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case err := <-exited:
			t.Fatalf("the child exited before its first checkpoint (%v):\n%s", err, out.String())
		case <-deadline:
			child.Process.Kill()
			t.Fatal("no checkpoint after 60 s")
		case <-time.After(time.Millisecond):
			if ck, _ := readCheckpoint(CheckpointDir(cfg.Out)); ck != nil && ck.State != "" {
				break wait
			}
		}
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	ck, err := readCheckpoint(CheckpointDir(cfg.Out))
	if err != nil || ck == nil {
		t.Fatalf("checkpoint after the kill: %v", err)
	}
	if ck.Done || ck.Step >= killSteps {
		t.Fatalf("the child finished (step %d) before it was killed; the test proves nothing", ck.Step)
	}
	t.Logf("killed the child with its last checkpoint at step %d of %d", ck.Step, killSteps)

	s := openStore(t, dir)
	res, err := Run(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != ck.Step || res.Steps != killSteps || res.TrainingRunID != ck.TrainingRun {
		t.Fatalf("resumed at %d (checkpoint %d), %d steps (want %d), training run %d (was %d)",
			res.Resumed, ck.Step, res.Steps, killSteps, res.TrainingRunID, ck.TrainingRun)
	}
	curve, err := s.LossCurve(context.Background(), res.TrainingRunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(curve) != killSteps {
		t.Fatalf("loss curve has %d points, want %d", len(curve), killSteps)
	}
	for i, p := range curve {
		if p.Step != i+1 {
			t.Fatalf("loss curve point %d is step %d: duplicated or missing steps", i, p.Step)
		}
	}
	runs, _ := s.ListRuns(context.Background(), "train")
	if len(runs) != 1 {
		t.Fatalf("%d training runs recorded, want 1", len(runs))
	}

	// The same job without the kill writes the same adapter, bit for bit: the
	// resumed run saw the same data in the same order with the same optimizer state.
	straight := t.TempDir()
	for _, f := range []string{"gen.gguf", "text.txt"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(straight, f), b, 0o644)
	}
	os.MkdirAll(filepath.Join(straight, "out"), 0o755)
	s2 := openStore(t, straight)
	ref, err := Run(context.Background(), s2, killConfig(straight))
	if err != nil {
		t.Fatal(err)
	}
	if ref.OutHash != res.OutHash {
		t.Fatalf("the resumed adapter differs from an uninterrupted run's (%s vs %s)", res.OutHash, ref.OutHash)
	}
}
