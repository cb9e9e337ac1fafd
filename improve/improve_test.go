package improve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/agent/world"
	"github.com/fireact/fireact/improve/improvetest"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/report"
)

func newDemoWorld(t *testing.T) *improvetest.World {
	return improvetest.NewWorld(t, world.Config{Seed: 1, People: 12, Films: 8, Orgs: 4, TrainQuestions: 24, DevQuestions: 8})
}

func testConfig(d *improvetest.World) Config {
	return Config{Name: "star", Dir: filepath.Join(d.Dir, "improve"), Base: d.Base, Init: d.SFT, Train: d.Train, Dev: d.Dev,
		TrainIndices: allIndices(8), DevIndices: allIndices(6), TeacherRuns: []string{improvetest.TeacherRun},
		Rounds: 2, K: 2, Temperature: 0.8, MaxTokens: 48, MaxTurns: 4, Grammar: true, Search: d.Search(), Training: improvetest.Training(),
		Concurrency: 4, Threads: 1, Seed: 1, Log: testLog{}}
}

// testLog sends the job's progress lines to the test log when -v shows it.
type testLog struct{}

func (testLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// TestImproveRoundsResume runs two rounds of rejection sampling on the demo
// world, cancelled in the middle of round 2's sampling and run again: the
// rerun continues round 2 (the samples recorded before the cancel are kept,
// round 1 is not redone) and the store then holds, for rounds 0, 1 and 2,
// the counts the sample runs and datasets say, an adapter per round trained
// from the previous one that llama.cpp loads, and each round's dev EM, which
// the report shows.
func TestImproveRoundsResume(t *testing.T) {
	start := time.Now()
	d := newDemoWorld(t)
	t.Logf("set-up (teacher, student, SFT adapter): %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	cfg := testConfig(d)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg.OnEvent = func(e Event) {
		if e.Round == 2 && e.Phase == store.PhaseSample && e.Done >= 5 {
			cancel()
		}
	}
	t0 := time.Now()
	if _, err := Run(cctx, d.Store, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled job returned %v, want context.Canceled", err)
	}
	t.Logf("first process: %s", time.Since(t0).Round(time.Millisecond))
	rounds, err := d.Store.Rounds(ctx, "star")
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 3 || rounds[1].Status != store.StatusDone || rounds[2].Status != store.StatusInterrupted || rounds[2].Phase != store.PhaseSample {
		t.Fatalf("rounds after the cancel: %+v", rounds)
	}
	round1 := rounds[1]
	before := map[int64]bool{} // round 2's samples recorded before the cancel
	for k := 0; k < cfg.K; k++ {
		if run, err := d.Store.RunByName(ctx, fmt.Sprintf("star/r2/sample-%d", k)); err == nil {
			eps, _ := d.Store.Episodes(ctx, run.ID)
			for _, ep := range eps {
				before[ep.ID] = true
			}
		}
	}
	if len(before) == 0 || len(before) >= cfg.K*len(cfg.TrainIndices) {
		t.Fatalf("%d of round 2's samples recorded before the cancel", len(before))
	}

	cfg.OnEvent = nil
	t1 := time.Now()
	res, err := Run(ctx, d.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second process: %s", time.Since(t1).Round(time.Millisecond))
	if len(res.Resumed) != 1 || res.Resumed[0] != 2 {
		t.Errorf("resumed rounds %v, want [2]", res.Resumed)
	}
	if rounds, err = d.Store.Rounds(ctx, "star"); err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 3 {
		t.Fatalf("%d rounds recorded, want 3", len(rounds))
	}
	if r1 := rounds[1]; r1.TrainingRunID != round1.TrainingRunID || r1.AdapterHash != round1.AdapterHash || !r1.FinishedAt.Equal(round1.FinishedAt) {
		t.Errorf("round 1 changed on the resume: %+v, was %+v", r1, round1)
	}
	m, err := llama.LoadModel(d.Base, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	teacher, err := d.Store.DatasetByName(ctx, "star/teacher")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rounds {
		t.Logf("round %d: %d samples, %d passed, %d kept, %d solved, trained on %d + %d teacher, prompt tokens %d decoded %d, dev EM %.3f F1 %.3f, %.1fs sample %.1fs train %.1fs eval",
			r.Round, r.Samples, r.Passed, r.Kept, r.Solved, r.SelfExamples, r.TeacherExamples, r.PromptTokens, r.PromptDecoded,
			r.DevEM, r.DevF1, r.SampleSeconds, r.TrainSeconds, r.EvalSeconds)
		if r.Status != store.StatusDone || r.Phase != store.PhaseDone || r.FinishedAt.IsZero() {
			t.Errorf("round %d: status %s phase %s", r.Round, r.Status, r.Phase)
		}
		// Dev EM per round is the dev run's.
		dev, err := d.Store.Summary(ctx, r.DevRunID)
		if err != nil {
			t.Fatal(err)
		}
		if dev.Asked != len(cfg.DevIndices) || dev.Episodes != len(cfg.DevIndices) || dev.EM != r.DevEM || dev.F1 != r.DevF1 {
			t.Errorf("round %d: dev run %+v, the round says EM %.3f F1 %.3f", r.Round, dev, r.DevEM, r.DevF1)
		}
		if r.Round == 0 {
			if r.Adapter != d.SFT || r.Samples != 0 {
				t.Errorf("round 0: %+v", r)
			}
			continue
		}
		if want := rounds[r.Round-1].Adapter; r.AdapterIn != want {
			t.Errorf("round %d sampled with %s, want the previous round's %s", r.Round, r.AdapterIn, want)
		}
		// The counts are what the sample runs hold.
		passed, samples := 0, 0
		solved := map[int64]bool{}
		for k := 0; k < cfg.K; k++ {
			run, err := d.Store.RunByName(ctx, fmt.Sprintf("star/r%d/sample-%d", r.Round, k))
			if err != nil {
				t.Fatal(err)
			}
			if run.Kind != store.KindGenerate || run.Split != "train" || !strings.Contains(run.Config, `"temperature":0.8`) {
				t.Errorf("sample run %s: %+v", run.Name, run)
			}
			eps, _ := d.Store.Episodes(ctx, run.ID)
			for _, ep := range eps {
				samples++
				if ep.Status == store.EpisodeDone && ep.EM == 1 {
					passed++
					solved[ep.QuestionID] = true
				}
			}
		}
		if r.K != cfg.K || r.Questions != len(cfg.TrainIndices) || r.Samples != samples || samples != cfg.K*len(cfg.TrainIndices) ||
			r.Passed != passed || r.Kept > passed || r.Solved != len(solved) || r.Kept < r.Solved {
			t.Errorf("round %d counts %+v; the sample runs hold %d episodes, %d passed, %d questions solved", r.Round, r, samples, passed, len(solved))
		}
		// The training mix: every kept sample and every teacher episode (mix 1:1).
		ds, err := d.Store.Dataset(ctx, r.DatasetID)
		if err != nil {
			t.Fatal(err)
		}
		if r.SelfExamples != r.Kept || r.TeacherExamples != teacher.Size || ds.Size != r.SelfExamples+r.TeacherExamples {
			t.Errorf("round %d: dataset of %d for %d kept + %d teacher (teacher set %d)", r.Round, ds.Size, r.SelfExamples, r.TeacherExamples, teacher.Size)
		}
		// The adapter: written, recorded by hash, trained from the previous one, loadable.
		if h, err := store.FileHash(r.Adapter); err != nil || h != r.AdapterHash {
			t.Errorf("round %d adapter %s: hash %s (%v), recorded %s", r.Round, r.Adapter, h, err, r.AdapterHash)
		}
		trun, err := d.Store.TrainingRun(ctx, r.TrainingRunID)
		if err != nil {
			t.Fatal(err)
		}
		initAbs, _ := filepath.Abs(r.AdapterIn)
		if trun.Status != store.StatusDone || trun.DatasetID != r.DatasetID || !strings.Contains(trun.Hyperparams, `"init_adapter":"`+initAbs+`"`) {
			t.Errorf("round %d training run %+v", r.Round, trun)
		}
		a, err := m.LoadAdapter(r.Adapter)
		if err != nil {
			t.Fatalf("round %d: %v", r.Round, err)
		}
		a.Close()
		// The K copies of a question share their prompt's KV cells.
		if r.PromptDecoded <= 0 || r.PromptDecoded >= r.PromptTokens {
			t.Errorf("round %d: %d prompt tokens, %d decoded: no prefix sharing", r.Round, r.PromptTokens, r.PromptDecoded)
		}
	}
	// Round 2's samples from before the cancel are still there: resumed, not redone.
	for k := 0; k < cfg.K; k++ {
		run, _ := d.Store.RunByName(ctx, fmt.Sprintf("star/r2/sample-%d", k))
		eps, _ := d.Store.Episodes(ctx, run.ID)
		for _, ep := range eps {
			delete(before, ep.ID)
		}
	}
	if len(before) != 0 {
		t.Errorf("%d samples recorded before the cancel are gone", len(before))
	}
	if res.Adapter != rounds[2].Adapter || len(res.Rounds) != 3 {
		t.Errorf("result: adapter %s, %d rounds", res.Adapter, len(res.Rounds))
	}

	// The report shows the rounds.
	rep, err := report.Build(ctx, d.Store, report.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := report.Text(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Improve rounds") || len(rep.Rounds) != 3 {
		t.Errorf("report: %d rounds\n%s", len(rep.Rounds), b.String())
	}

	// A rerun finds the job done; the same name with other settings is refused.
	again, err := Run(ctx, d.Store, cfg)
	if err != nil || len(again.Resumed) != 0 || again.Adapter != res.Adapter {
		t.Errorf("rerun of a finished job: %+v, %v", again, err)
	}
	cfg.K = 3
	if _, err := Run(ctx, d.Store, cfg); err == nil || !strings.Contains(err.Error(), "k is 2, now 3") {
		t.Errorf("job with another k: %v, want a refusal naming k", err)
	}

	// A job cancelled as its training starts resumes into the same training
	// run (finetune's checkpoint), not a second one.
	tcfg := testConfig(d)
	tcfg.Name, tcfg.Dir, tcfg.Rounds = "star-train", filepath.Join(d.Dir, "improve-train"), 1
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	tcfg.OnEvent = func(e Event) {
		if e.Round == 1 && e.Phase == store.PhaseTrain {
			tcancel()
		}
	}
	if _, err := Run(tctx, d.Store, tcfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("job cancelled at training: %v", err)
	}
	if rs, _ := d.Store.Rounds(ctx, "star-train"); len(rs) != 2 || rs[1].Phase != store.PhaseTrain || rs[1].Status != store.StatusInterrupted {
		t.Fatalf("rounds after a cancel at training: %+v", rs)
	}
	tcfg.OnEvent = nil
	tres, err := Run(ctx, d.Store, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := filepath.Abs(filepath.Join(tcfg.Dir, "round-1.lora.gguf"))
	trains, _ := d.Store.ListRuns(ctx, store.KindTrain)
	n := 0
	for _, r := range trains {
		if r.Adapter == out {
			n++
		}
	}
	if n != 1 || tres.Rounds[1].Status != store.StatusDone {
		t.Errorf("%d training runs for %s after the resume, want 1; round %+v", n, out, tres.Rounds[1])
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}
