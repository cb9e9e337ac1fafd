package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fireact/fireact/llama"
)

// TestRecipeFireAct: --recipe fireact fills in FireAct's run (finetune.py and the
// README command line of anchen1011/FireAct), the agent recipe our defaults, and
// explicit settings win over either.
func TestRecipeFireAct(t *testing.T) {
	c := Config{Recipe: RecipeFireAct, Base: "b", Out: "o", TextFile: "t"}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	want := Config{Recipe: RecipeFireAct, Base: "b", Out: "o", TextFile: "t", Template: TemplateAlpaca,
		TrainOnInputs: true, Cutoff: 512, MaxTokens: 8192, BatchExamples: 128, KeepBest: true, Val: 0.01,
		EvalEvery: 200, SaveEvery: 200, Epochs: 30, LR: 3e-4, Warmup: 100, Schedule: ScheduleLinear,
		Rank: 8, Alpha: 16, LoRADropout: 0.05, Targets: llama.TargetsQV, Optimizer: llama.OptimizerAdamW}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("fireact recipe:\n got %+v\nwant %+v", c, want)
	}
	a := Config{Base: "b", Out: "o", TextFile: "t", Cutoff: 300, BatchExamples: 4}
	if err := a.defaults(); err != nil {
		t.Fatal(err)
	}
	if a.Recipe != RecipeAgent || a.TrainOnInputs || a.KeepBest || a.LoRADropout != 0 || a.Cutoff != 300 ||
		a.BatchExamples != 4 || a.MaxTokens != DefaultMaxTokens || a.Warmup != DefaultWarmup || a.Val != DefaultVal {
		t.Fatalf("agent recipe: %+v", a)
	}
	if _, err := ParseRecipe("alpaca-lora"); err == nil {
		t.Fatal("unknown recipe accepted")
	}
}

// hyperparamsExcluded are Config fields that do not decide what a job computes,
// each with the reason; every other field must change the fingerprint, or a
// changed setting would silently resume another job's checkpoint.
var hyperparamsExcluded = map[string]string{
	"Progress":          "where progress lines go",
	"Threads":           "how many CPUs compute the same steps",
	"SaveEvery":         "when checkpoints are written; the steps are the same",
	"DatasetName":       "the name of the recorded dataset; a resumed job reads the dataset by id",
	"MemoryAvailable":   "what the memory check compares with, before any step",
	"IgnoreMemoryCheck": "whether the memory check runs, before any step",
	// Bit-identical steps for the llama, qwen and gemma graphs
	// (TestGradientCheckpointingIsTheSameStep); phi3's fused QKV within
	// float rounding.
	"GradientCheckpointing": "how a step keeps its activations, not what it computes",
}

// TestHyperparamsCoverConfig changes each Config field in turn and checks that
// the fingerprint changes.
func TestHyperparamsCoverConfig(t *testing.T) {
	base := Config{Base: "b.gguf", Out: "o.gguf", Runs: []string{"r"}}
	if err := base.defaults(); err != nil {
		t.Fatal(err)
	}
	fp0, _ := fingerprint(base.hyperparams())
	typ := reflect.TypeOf(base)
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if _, ok := hyperparamsExcluded[f.Name]; ok {
			continue
		}
		c := base
		c.Runs = slices.Clone(base.Runs)
		v := reflect.ValueOf(&c).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 3)
		case reflect.Uint32, reflect.Uint64:
			v.SetUint(v.Uint() + 3)
		case reflect.Float32, reflect.Float64:
			v.SetFloat(v.Float() + 0.25)
		case reflect.Slice:
			v.Set(reflect.Append(v, reflect.ValueOf("other")))
		case reflect.Map:
			v.Set(reflect.ValueOf(map[string]float64{"react": 2}))
		case reflect.Pointer:
			x := 0.5
			v.Set(reflect.ValueOf(&x))
		default:
			t.Fatalf("Config.%s: kind %s not handled; extend the test", f.Name, v.Kind())
		}
		if fp, _ := fingerprint(c.hyperparams()); fp == fp0 {
			t.Errorf("Config.%s changes the job but not its fingerprint: add it to hyperparams (or, if it does not change what is computed, to hyperparamsExcluded with the reason)", f.Name)
		}
	}
}

// TestEpochStepsAccumulate: with BatchExamples an optimizer step holds that many
// examples however the micro-batches are packed, an epoch's steps cover its
// order exactly once, and the plan locates every step.
func TestEpochStepsAccumulate(t *testing.T) {
	d := &data{lengths: []int{100, 300, 200, 400, 100, 100, 250, 50, 300, 200}, train: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}
	c := &Config{BatchExamples: 4, MaxTokens: 500, Seed: 7, Epochs: 2}
	steps := d.epochSteps(c, 0)
	if len(steps) != 3 {
		t.Fatalf("%d steps, want 3 (4 + 4 + 2 examples)", len(steps))
	}
	var seen []int
	for si, st := range steps {
		n := 0
		for _, mb := range st {
			tok := 0
			for _, i := range mb {
				tok += d.lengths[i]
			}
			if tok > c.MaxTokens {
				t.Fatalf("step %d: micro-batch of %d tokens", si, tok)
			}
			n += len(mb)
			seen = append(seen, mb...)
		}
		if want := min(4, 10-4*si); n != want {
			t.Fatalf("step %d has %d examples, want %d", si, n, want)
		}
	}
	if !slices.Equal(seen, EpochOrder(d.train, c.Seed, 0)) {
		t.Fatalf("steps %v do not follow the epoch order", steps)
	}
	p := newPlan(d, c)
	if p.total != 6 || !slices.Equal(p.perEpoch, []int{3, 3}) {
		t.Fatalf("plan %+v", p)
	}
	if e, s := p.locate(4); e != 1 || s != 1 {
		t.Fatalf("locate(4) = %d, %d", e, s)
	}
	// Planning is a pure function: doing it twice changes nothing.
	if q := newPlan(d, c); !reflect.DeepEqual(p, q) {
		t.Fatalf("second plan %+v differs from %+v", q, p)
	}
}

// TestRecordedCutoffIsUsed: a cutoff above the model's context is capped before
// the settings are fingerprinted and recorded, so the training run's
// hyperparameters hold the cutoff training used.
func TestRecordedCutoffIsUsed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte(storyText), 0o644)
	cfg := Config{Base: genModel(t, dir, 4, ""), Out: filepath.Join(dir, "a.gguf"), TextFile: text,
		Cutoff: 4096, MaxTokens: 4096, Val: -1, MaxSteps: 2, Rank: 2, Seed: 1, Threads: 1}
	res, err := Run(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	trun, err := s.TrainingRun(context.Background(), res.TrainingRunID)
	if err != nil {
		t.Fatal(err)
	}
	var hp struct {
		Cutoff    int `json:"cutoff"`
		MaxTokens int `json:"max_tokens"`
	}
	if err := json.Unmarshal([]byte(trun.Hyperparams), &hp); err != nil {
		t.Fatal(err)
	}
	if res.Cutoff != 512 || hp.Cutoff != res.Cutoff || hp.MaxTokens != 4096 {
		t.Fatalf("trained with cutoff %d, recorded cutoff %d (max tokens %d)", res.Cutoff, hp.Cutoff, hp.MaxTokens)
	}
}

// TestKeepBest: with KeepBest the output is the adapter of the step with the
// lowest validation loss: byte for byte what training stopped at that step
// writes (constant learning rate, so the shorter run takes the same steps).
func TestKeepBest(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte(storyText+storyText), 0o644)
	base := genModel(t, dir, 5, "")
	cfg := Config{Base: base, Out: filepath.Join(dir, "best.gguf"), TextFile: text, Cutoff: 32, MaxTokens: 64,
		BatchExamples: 3, Val: 2, EvalEvery: 1, SaveEvery: 4, MaxSteps: 12, LR: 0.3, Warmup: -1,
		Schedule: ScheduleConstant, Rank: 4, Targets: llama.TargetsAll, LoRADropout: 0.1, KeepBest: true, Seed: 2, Threads: 1}
	res, err := Run(context.Background(), s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("best step %d (val %.4f), last val %.4f", res.BestStep, res.BestValLoss, res.ValLoss)
	if res.BestStep < 1 || res.BestStep > 12 || res.BestValLoss > res.ValLoss {
		t.Fatalf("result %+v", res)
	}
	short := cfg
	short.KeepBest, short.MaxSteps, short.Out = false, res.BestStep, filepath.Join(dir, "short.gguf")
	sres, err := Run(context.Background(), s, short)
	if err != nil {
		t.Fatal(err)
	}
	if sres.OutHash != res.OutHash {
		t.Fatalf("kept adapter %s is not step %d's %s", res.OutHash, res.BestStep, sres.OutHash)
	}
	if res.BestStep == 12 {
		t.Log("the best step was the last; the test did not tell best from last")
	}
	// Cancelled after its first checkpoint and resumed, the same job (accumulated
	// steps, dropout masks, the best so far) writes the same adapter.
	again := cfg
	again.Out = filepath.Join(dir, "again.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			if ck, _ := readCheckpoint(CheckpointDir(again.Out)); ck != nil && ck.State != "" {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err = Run(ctx, s, again)
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v", err)
	}
	ares, err := Run(context.Background(), s, again)
	if err != nil {
		t.Fatal(err)
	}
	if ares.Resumed == 0 || ares.OutHash != res.OutHash || ares.BestStep != res.BestStep {
		t.Fatalf("resumed at %d: best step %d, adapter %s; uninterrupted: best step %d, %s",
			ares.Resumed, ares.BestStep, ares.OutHash, res.BestStep, res.OutHash)
	}
}
