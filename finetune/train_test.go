package finetune

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/finetune/dataformat"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// hotpotSlice writes the first n rows of FireAct's HotpotQA alpaca set.
func hotpotSlice(t testing.TB, dir string, n int) string {
	t.Helper()
	b, err := os.ReadFile(hotpotAlpaca)
	if err != nil {
		t.Fatal(err)
	}
	var rows []dataformat.AlpacaRow
	if err := json.Unmarshal(b, &rows); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(rows[:n])
	path := filepath.Join(dir, "hotpotqa_slice.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTrainFromEpisodes: a tiny LoRA run on FireAct trajectories imported into a
// real store lowers the training loss and records the run, the dataset and the
// loss curve.
func TestTrainFromEpisodes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	rep, err := dataformat.ImportFile(ctx, s, hotpotSlice(t, dir, 12), dataformat.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := genModel(t, dir, 3, "")
	before := fileSum(t, base)
	one := 1.0
	var progress strings.Builder
	cfg := Config{
		Base: base, Out: filepath.Join(dir, "out", "adapter.gguf"),
		Dataset: rep.Dataset, MinReward: &one, Mix: map[string]float64{"react": 1},
		Cutoff: 400, MaxTokens: 800, Val: 2, EvalEvery: 10, SaveEvery: 10,
		MaxSteps: 40, LR: 1e-2, Warmup: 2, Schedule: ScheduleCosine,
		Rank: 8, Targets: llama.TargetsAll, Seed: 1, Threads: 1, Progress: &progress,
	}
	os.MkdirAll(filepath.Dir(cfg.Out), 0o755)
	start := time.Now()
	res, err := Run(ctx, s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d steps, %d tokens in %s: %.0f tok/s; loss %.3f val %.3f; %d examples (%d truncated)",
		res.Steps, res.Tokens, time.Since(start).Round(time.Millisecond), res.TokensPerSec, res.Loss, res.ValLoss, res.Examples, res.Truncated)
	if res.Steps != 40 || res.Examples != 10 || res.ValExamples != 2 || res.Truncated == 0 {
		t.Fatalf("result %+v", res)
	}
	curve, err := s.LossCurve(ctx, res.TrainingRunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(curve) != 40 || curve[0].Step != 1 || curve[39].Step != 40 {
		t.Fatalf("loss curve has %d points", len(curve))
	}
	first := (curve[0].Loss + curve[1].Loss + curve[2].Loss) / 3
	last := (curve[37].Loss + curve[38].Loss + curve[39].Loss) / 3
	if last > first*0.8 {
		t.Fatalf("training loss %.3f -> %.3f: not learning", first, last)
	}
	if curve[0].LR >= curve[1].LR || curve[39].LR >= curve[20].LR {
		t.Fatalf("learning rates do not warm up and decay: %v %v %v", curve[0].LR, curve[1].LR, curve[39].LR)
	}
	trun, err := s.TrainingRun(ctx, res.TrainingRunID)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(cfg.Out)
	if trun.Status != store.StatusDone || trun.OutputAdapter != abs || trun.DatasetID != res.DatasetID || !strings.Contains(trun.Hyperparams, `"rank":8`) {
		t.Fatalf("training run %+v", trun)
	}
	d, err := s.Dataset(ctx, res.DatasetID)
	if err != nil || !strings.Contains(d.Recipe, `"mix":{"react":1}`) {
		t.Fatalf("dataset %+v (%v)", d, err)
	}
	run, _ := s.Run(ctx, trun.RunID)
	if run.Kind != store.KindTrain || run.Status != store.StatusDone || run.ModelHash == "" {
		t.Fatalf("run %+v", run)
	}
	if !strings.Contains(progress.String(), "step 40/40") || !strings.Contains(progress.String(), "tok/s") {
		t.Fatalf("progress:\n%s", progress.String())
	}
	if fileSum(t, base) != before {
		t.Fatal("training changed the base model file")
	}
	// The adapter loads into llama.cpp; running the job again reports it done.
	m := loadModel(t, base, llama.ModelOptions{})
	a, err := m.LoadAdapter(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	again, err := Run(ctx, s, cfg)
	if err != nil || !again.AlreadyDone || again.Steps != 40 || again.OutHash != res.OutHash {
		t.Fatalf("second run: %+v, %v", again, err)
	}
	// A different job with the same output is refused rather than mixed in.
	cfg.LR = 1e-3
	if _, err := Run(ctx, s, cfg); err == nil {
		t.Fatal("a checkpoint of another job was resumed")
	}
}

// storyText is a small text stories260K has not seen word for word.
const storyText = "The old lighthouse keeper counted ships every night. He wrote each name in a green book. " +
	"One stormy night a tiny boat came close to the rocks, and the keeper lit the great lamp. " +
	"The boat turned away and sailed home safe. The keeper smiled and wrote its name in the book.\n"

// TestTextFineTuneLowersPerplexity: LoRA on stories260K over a small text lowers
// its perplexity with the adapter well below the base's; the base is unchanged.
func TestTextFineTuneLowersPerplexity(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	text := filepath.Join(dir, "story.txt")
	if err := os.WriteFile(text, []byte(storyText), 0o644); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, stories260K)
	cfg := Config{Base: stories260K, Out: filepath.Join(dir, "story-lora.gguf"), TextFile: text,
		Val: -1, MaxSteps: 60, LR: 1e-2, Warmup: -1, Schedule: ScheduleConstant,
		Rank: 8, Targets: llama.TargetsAll | llama.TargetOutput, Seed: 2, Threads: 1}
	res, err := Run(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stories260K LoRA: %d steps, %.0f tok/s, loss %.3f", res.Steps, res.TokensPerSec, res.Loss)
	m := loadModel(t, stories260K, llama.ModelOptions{})
	c, err := m.NewContext(llama.ContextOptions{NCtx: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	basePPL, err := c.Perplexity(storyText)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.LoadAdapter(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := c.SetAdapter(a, 1); err != nil {
		t.Fatal(err)
	}
	tuned, err := c.Perplexity(storyText)
	if err != nil {
		t.Fatal(err)
	}
	c.ClearAdapters()
	t.Logf("perplexity base %.2f, with the adapter %.2f", basePPL.Perplexity, tuned.Perplexity)
	if tuned.Perplexity > basePPL.Perplexity/3 {
		t.Fatalf("perplexity with the adapter %.2f not well below the base's %.2f", tuned.Perplexity, basePPL.Perplexity)
	}
	if fileSum(t, stories260K) != before {
		t.Fatal("training changed stories260K.gguf")
	}
}

// TestFullTrainingOnText: full-parameter training of a tiny F32 model on plain
// text lowers its loss and writes a whole model that loads.
func TestFullTrainingOnText(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte(strings.Repeat("the little girl named Lily went to the park with her dog . ", 30)), 0o644)
	base := genModel(t, dir, 5, "")
	before := fileSum(t, base)
	out := filepath.Join(dir, "pretrained.gguf")
	res, err := Run(context.Background(), s, Config{Base: base, Out: out, TextFile: text, Full: true,
		Cutoff: 128, MaxTokens: 256, Val: 1, Epochs: 6, LR: 3e-3, Seed: 3, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	curve, _ := s.LossCurve(context.Background(), res.TrainingRunID)
	t.Logf("full training: %d steps, %.0f tok/s, loss %.3f -> %.3f, val %.3f", res.Steps, res.TokensPerSec, curve[0].Loss, res.Loss, res.ValLoss)
	if res.Loss > curve[0].Loss/2 || res.ValLoss > curve[0].Loss/2 {
		t.Fatalf("loss %.3f -> %.3f (val %.3f): not learning", curve[0].Loss, res.Loss, res.ValLoss)
	}
	if fileSum(t, base) != before {
		t.Fatal("full training changed the base file")
	}
	m := loadModel(t, out, llama.ModelOptions{})
	c, err := m.NewContext(llama.ContextOptions{NCtx: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.Perplexity("the little girl named Lily went to the park with her dog . the little girl named Lily went to the park")
	if err != nil {
		t.Fatal(err)
	}
	if p.Perplexity > 10 {
		t.Fatalf("the trained model's perplexity on its text is %.2f", p.Perplexity)
	}
}

// TestCancelSavesAndResumes: cancelling stops with a checkpoint; the same job run
// again resumes there and finishes with the planned step count.
func TestCancelSavesAndResumes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte(strings.Repeat("Once upon a time there was a little boy named Tim . ", 40)), 0o644)
	cfg := Config{Base: genModel(t, dir, 6, ""), Out: filepath.Join(dir, "a.gguf"), TextFile: text,
		Cutoff: 64, MaxTokens: 64, Val: -1, MaxSteps: 400, SaveEvery: 5, LR: 1e-3, Seed: 4, Threads: 1, Targets: llama.TargetsAll}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the first checkpoint is on disk.
		for {
			if ck, _ := readCheckpoint(CheckpointDir(cfg.Out)); ck != nil && ck.State != "" {
				cancel()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	_, err := Run(ctx, s, cfg)
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v", err)
	}
	ck, err := readCheckpoint(CheckpointDir(cfg.Out))
	if err != nil || ck == nil || ck.Done || ck.Step == 0 || ck.Step >= 400 {
		t.Fatalf("checkpoint after cancel: %+v (%v)", ck, err)
	}
	trun, _ := s.TrainingRun(context.Background(), ck.TrainingRun)
	if trun.Status != store.StatusInterrupted {
		t.Fatalf("training run status %q after cancel", trun.Status)
	}
	// A state file cut short (a crash mid-write under its final name, a full
	// disk) is refused by its recorded sum, not loaded as a good one.
	statePath := filepath.Join(CheckpointDir(cfg.Out), ck.State)
	good, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(statePath, good[:len(good)/2], 0o644)
	if _, err := Run(context.Background(), s, cfg); err == nil || !strings.Contains(err.Error(), "does not match its checkpoint") {
		t.Fatalf("resume from a truncated state: %v, want a checkpoint mismatch", err)
	}
	os.WriteFile(statePath, good, 0o644)
	res, err := Run(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A finished job whose output was cut since is not reported as done.
	out, _ := os.ReadFile(cfg.Out)
	os.WriteFile(cfg.Out, out[:len(out)-1], 0o644)
	if _, err := Run(context.Background(), s, cfg); err == nil || !strings.Contains(err.Error(), "is not the file it wrote") {
		t.Fatalf("rerun over a changed output: %v, want a refusal", err)
	}
	os.WriteFile(cfg.Out, out, 0o644)
	if again, err := Run(context.Background(), s, cfg); err != nil || !again.AlreadyDone {
		t.Fatalf("rerun over the restored output: %+v, %v", again, err)
	}
	if res.Resumed != ck.Step || res.Steps != 400 || res.TrainingRunID != ck.TrainingRun {
		t.Fatalf("resumed from %d (checkpoint %d), %d steps, training run %d (was %d)", res.Resumed, ck.Step, res.Steps, res.TrainingRunID, ck.TrainingRun)
	}
	curve, _ := s.LossCurve(context.Background(), res.TrainingRunID)
	if len(curve) != 400 {
		t.Fatalf("loss curve has %d points, want 400", len(curve))
	}
}
