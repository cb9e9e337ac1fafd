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

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/agent/world"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/report"
)

// demoWorld is the demo's miniature FireAct world in a real store: the world's
// encyclopedia indexed as the local search corpus, the scripted oracle
// teacher's ReAct trajectories on the train split (run "teacher-react"), and
// a tiny llama student made in code with an SFT adapter trained on them.
type demoWorld struct {
	st         *store.Store
	dir        string
	train, dev tasks.Task
	corpus     string
	base, sft  string
}

func newDemoWorld(t *testing.T) *demoWorld {
	t.Helper()
	ctx := context.Background()
	d := &demoWorld{dir: t.TempDir(), corpus: "world-1"}
	w := world.New(world.Config{Seed: 1, People: 12, Films: 8, Orgs: 4, TrainQuestions: 24, DevQuestions: 8})
	var err error
	if d.st, err = store.Open(ctx, filepath.Join(d.dir, "fireact.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.st.Close() })
	docs := w.Docs()
	for i := range docs {
		docs[i].Corpus = d.corpus
	}
	if err := d.st.AddCorpusDocs(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if d.train, err = w.Task("train"); err != nil {
		t.Fatal(err)
	}
	if d.dev, err = w.Task("dev"); err != nil {
		t.Fatal(err)
	}
	search, err := agent.NewSearch(ctx, d.st, d.searchOptions())
	if err != nil {
		t.Fatal(err)
	}
	teacher := &agent.Agent{LLM: world.NewOracle(w), Search: search, Method: agent.ReAct(), Prompt: agent.Prompt{Format: agent.FormatAlpaca}}
	if _, err := agent.RunTask(ctx, agent.RunSpec{Store: d.st, Task: d.train, Agent: teacher, Indices: allIndices(d.train.Len()),
		Concurrency: 4, Run: store.Run{Name: "teacher-react", Kind: store.KindGenerate, Model: "world-oracle", Method: "react",
			Task: world.TaskName, Split: "train", Config: "{}"}}); err != nil {
		t.Fatal(err)
	}
	// The student's vocabulary holds the world's words, as the demo's does.
	seen := map[string]bool{}
	var vocab []string
	for _, x := range append(modelgen.BasicWords(), w.Vocabulary()...) {
		if !seen[x] {
			seen[x] = true
			vocab = append(vocab, x)
		}
	}
	made := filepath.Join(d.dir, "student-init.gguf")
	if err := modelgen.WriteLlama(made, modelgen.LlamaConfig{Name: "improve-test-student", Vocab: modelgen.SPMVocab(vocab),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 4, NFF: 192, NCtx: 2048, Seed: 1, InitStd: 0.02}); err != nil {
		t.Fatal(err)
	}
	// A LoRA on a random model learns little in a few steps; full training on
	// the teacher's trajectories makes a student that answers some train
	// questions, so that rounds have samples to keep.
	one := 1.0
	d.base = filepath.Join(d.dir, "student.gguf")
	tc := d.training()
	tc.Base, tc.Out, tc.Runs, tc.MinReward, tc.Full, tc.MaxSteps, tc.LR, tc.SaveEvery = made, d.base, []string{"teacher-react"}, &one, true, fullSteps, 3e-3, -1
	if _, err := finetune.Run(ctx, d.st, tc); err != nil {
		t.Fatal(err)
	}
	d.sft = filepath.Join(d.dir, "sft.lora.gguf")
	tc = d.training()
	tc.Base, tc.Out, tc.Runs, tc.MinReward, tc.MaxSteps, tc.Rank, tc.Alpha = d.base, d.sft, []string{"teacher-react"}, &one, 8, 8, 16
	if _, err := finetune.Run(ctx, d.st, tc); err != nil {
		t.Fatal(err)
	}
	return d
}

// fullSteps trains the student's base on the teacher's trajectories.
var fullSteps = 120

func (d *demoWorld) searchOptions() agent.SearchOptions {
	return agent.SearchOptions{Backend: agent.SearchLocal, Corpus: d.corpus}
}

// training is the tiny training job of every round.
func (d *demoWorld) training() finetune.Config {
	return finetune.Config{MaxSteps: 8, LR: 3e-3, MaxTokens: 256, Cutoff: 256, Val: -1, EvalEvery: -1, SaveEvery: 4,
		Targets: llama.TargetsAll, Threads: 1, Seed: 1}
}

func (d *demoWorld) config() Config {
	return Config{Name: "star", Dir: filepath.Join(d.dir, "improve"), Base: d.base, Init: d.sft, Train: d.train, Dev: d.dev,
		TrainIndices: allIndices(8), DevIndices: allIndices(6), TeacherRuns: []string{"teacher-react"},
		Rounds: 2, K: 2, Temperature: 0.8, MaxTokens: 48, MaxTurns: 4, Grammar: true, Search: d.searchOptions(), Training: d.training(),
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
	cfg := d.config()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg.OnEvent = func(e Event) {
		if e.Round == 2 && e.Phase == store.PhaseSample && e.Done >= 5 {
			cancel()
		}
	}
	t0 := time.Now()
	if _, err := Run(cctx, d.st, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled job returned %v, want context.Canceled", err)
	}
	t.Logf("first process: %s", time.Since(t0).Round(time.Millisecond))
	rounds, err := d.st.Rounds(ctx, "star")
	if err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 3 || rounds[1].Status != store.StatusDone || rounds[2].Status != store.StatusInterrupted || rounds[2].Phase != store.PhaseSample {
		t.Fatalf("rounds after the cancel: %+v", rounds)
	}
	round1 := rounds[1]
	before := map[int64]bool{} // round 2's samples recorded before the cancel
	for k := 0; k < cfg.K; k++ {
		if run, err := d.st.RunByName(ctx, fmt.Sprintf("star/r2/sample-%d", k)); err == nil {
			eps, _ := d.st.Episodes(ctx, run.ID)
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
	res, err := Run(ctx, d.st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second process: %s", time.Since(t1).Round(time.Millisecond))
	if len(res.Resumed) != 1 || res.Resumed[0] != 2 {
		t.Errorf("resumed rounds %v, want [2]", res.Resumed)
	}
	if rounds, err = d.st.Rounds(ctx, "star"); err != nil {
		t.Fatal(err)
	}
	if len(rounds) != 3 {
		t.Fatalf("%d rounds recorded, want 3", len(rounds))
	}
	if r1 := rounds[1]; r1.TrainingRunID != round1.TrainingRunID || r1.AdapterHash != round1.AdapterHash || !r1.FinishedAt.Equal(round1.FinishedAt) {
		t.Errorf("round 1 changed on the resume: %+v, was %+v", r1, round1)
	}
	m, err := llama.LoadModel(d.base, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	teacher, err := d.st.DatasetByName(ctx, "star/teacher")
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
		dev, err := d.st.Summary(ctx, r.DevRunID)
		if err != nil {
			t.Fatal(err)
		}
		if dev.Asked != len(cfg.DevIndices) || dev.Episodes != len(cfg.DevIndices) || dev.EM != r.DevEM || dev.F1 != r.DevF1 {
			t.Errorf("round %d: dev run %+v, the round says EM %.3f F1 %.3f", r.Round, dev, r.DevEM, r.DevF1)
		}
		if r.Round == 0 {
			if r.Adapter != d.sft || r.Samples != 0 {
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
			run, err := d.st.RunByName(ctx, fmt.Sprintf("star/r%d/sample-%d", r.Round, k))
			if err != nil {
				t.Fatal(err)
			}
			if run.Kind != store.KindGenerate || run.Split != "train" || !strings.Contains(run.Config, `"temperature":0.8`) {
				t.Errorf("sample run %s: %+v", run.Name, run)
			}
			eps, _ := d.st.Episodes(ctx, run.ID)
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
		ds, err := d.st.Dataset(ctx, r.DatasetID)
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
		trun, err := d.st.TrainingRun(ctx, r.TrainingRunID)
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
		run, _ := d.st.RunByName(ctx, fmt.Sprintf("star/r2/sample-%d", k))
		eps, _ := d.st.Episodes(ctx, run.ID)
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
	rep, err := report.Build(ctx, d.st, report.Options{})
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
	again, err := Run(ctx, d.st, cfg)
	if err != nil || len(again.Resumed) != 0 || again.Adapter != res.Adapter {
		t.Errorf("rerun of a finished job: %+v, %v", again, err)
	}
	cfg.K = 3
	if _, err := Run(ctx, d.st, cfg); err == nil || !strings.Contains(err.Error(), "k is 2, now 3") {
		t.Errorf("job with another k: %v, want a refusal naming k", err)
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}
