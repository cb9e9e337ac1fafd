// Package demo runs FireAct in miniature, offline, end to end: the embedded
// default job of `make demo` and `fireact demo`.
//
// A seeded world (agent/world) provides an encyclopedia, indexed as the local
// search corpus, and HotpotQA-style questions over disjoint train and dev entities.
// A scripted oracle teacher answers the train questions with ReAct, CoT and
// Reflexion through the real agent loop and search tool; the trajectories land in
// the store. A tiny llama student is made in code, pretrained on the encyclopedia
// with full-parameter training, then LoRA-tuned on the teacher's ReAct
// trajectories and on the multi-method mix. The prompted student, both fine-tuned
// students and the teacher are evaluated on dev with clean and noisy search, and
// everything feeds the store and `fireact report`.
//
// demo imports both agent and finetune (and improve, which does too): it is the
// pipeline they are the stages of. After FireAct's rows, one round of
// rejection sampling and one of GRPO continue the ReAct student. Every stage is cached under a directory named by
// a hash of the configuration, so a second run skips what is finished (and a run
// interrupted by Ctrl-C or a kill resumes where it stopped).
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/world"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/improve"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/report"
	"github.com/fireact/fireact/store/trajectory"
)

// Config is the whole experiment. The same Config gives the same numbers.
type Config struct {
	World world.Config
	// Student shape (a llama made in code; its vocabulary holds the world's words).
	NEmbd, NLayer, NHead, NFF int
	StudentSeed               uint64
	// Pretraining on the encyclopedia (full-parameter).
	PretrainSteps int
	PretrainLR    float64
	// LoRA fine-tuning (each of the two adapters).
	LoRASteps int
	LoRALR    float64
	Rank      int
	// MaxTokens is the packed length of a LoRA step (and the example cutoff).
	MaxTokens int
	// Beyond FireAct: one round of rejection sampling and one of GRPO on the
	// ReAct student, each sampling ImproveK trajectories for each of the first
	// ImproveQuestions train questions (0: no such rounds). RejectionSteps
	// are the rejection round's training steps (from the ReAct adapter, on
	// the teacher's ReAct data and the kept samples); GRPOEpochs and GRPOLR
	// the GRPO round's passes over its samples and learning rate.
	ImproveQuestions int     `json:",omitempty"`
	ImproveK         int     `json:",omitempty"`
	RejectionSteps   int     `json:",omitempty"`
	GRPOEpochs       int     `json:",omitempty"`
	GRPOLR           float64 `json:",omitempty"`
	// GRPOFormatPenalty is subtracted from the reward of an episode that did
	// not finish: 0 rewards only right answers (with a penalty, the measured
	// round learned to finish rather than to be right).
	GRPOFormatPenalty float64 `json:",omitempty"`
	// Noise is the probability of FireAct's noisy observation in the noisy evals.
	Noise float64
	// DevQuestions evaluated (0: all of the world's dev split).
	DevQuestions int
	// Concurrency is the number of questions in flight (they share one engine).
	Concurrency int
	Threads     int
	// TeacherURL, when set, replaces the scripted oracle by any OpenAI-compatible
	// model (TeacherModel at that base URL, key from OPENAI_API_KEY), prompted
	// with the project's few-shot examples.
	TeacherURL   string `json:",omitempty"`
	TeacherModel string `json:",omitempty"`
}

// DefaultConfig is the experiment of `make demo` (a few minutes on 2 cores).
func DefaultConfig() Config {
	return Config{
		World: world.DefaultConfig(),
		NEmbd: 128, NLayer: 4, NHead: 4, NFF: 384, StudentSeed: 1,
		PretrainSteps: 100, PretrainLR: 2e-3,
		LoRASteps: 300, LoRALR: 3e-3, Rank: 16, MaxTokens: 384,
		ImproveQuestions: 48, ImproveK: 4, RejectionSteps: 60, GRPOEpochs: 1, GRPOLR: 5e-5,
		Noise: 0.5, Concurrency: 8,
	}
}

// SmallConfig is a smaller world and shorter training, for tests.
func SmallConfig() Config {
	c := DefaultConfig()
	c.World = world.Config{Seed: 1, People: 24, Films: 16, Orgs: 8, TrainQuestions: 120, DevQuestions: 24}
	c.NEmbd, c.NFF = 96, 288
	c.PretrainSteps, c.LoRASteps = 40, 160
	c.ImproveQuestions, c.RejectionSteps = 24, 30
	return c
}

// Key is the content address of the configuration: the cache directory's name.
func (c Config) Key() string {
	b, _ := json.Marshal(c)
	// v2: the improve rounds' reward changed (no format penalty by default),
	// which the configuration's JSON does not show.
	h := sha256.Sum256(append([]byte("fireact-demo-v2\n"), b...))
	return hex.EncodeToString(h[:6])
}

// Row is one evaluated agent.
type Row struct {
	Name    string // e.g. "student + LoRA (ReAct)"
	Run     string // store run name
	Noise   float64
	EM, F1  float64
	Turns   float64
	N       int
	Seconds float64 // per question
}

// Stage is one step of the pipeline and how long it took.
type Stage struct {
	Name    string
	Elapsed time.Duration
	Cached  bool
}

// Result is what Run did and where it left things.
type Result struct {
	Dir      string
	DB       string
	Adapters map[string]string // "react", "multi" -> adapter file
	Base     string            // the pretrained student model
	Report   string            // HTML report
	Rows     []Row
	Stages   []Stage
	Teacher  map[string]int // teacher trajectories per method (successful)
	Elapsed  time.Duration
}

// Run runs (or resumes) the experiment under root/<cfg.Key()>, printing progress
// to log.
func Run(ctx context.Context, root string, cfg Config, log io.Writer) (*Result, error) {
	start := time.Now()
	if cfg.Threads <= 0 {
		cfg.Threads = runtime.NumCPU()
	}
	if log == nil {
		log = io.Discard
	}
	dir := filepath.Join(root, cfg.Key())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	res := &Result{Dir: dir, DB: filepath.Join(dir, "demo.db"), Adapters: map[string]string{}, Teacher: map[string]int{}}
	st, err := store.Open(ctx, res.DB)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	p := &pipeline{cfg: cfg, dir: dir, st: st, log: log, res: res, w: world.New(cfg.World)}
	p.corpus = fmt.Sprintf("world-%d", cfg.World.Seed)
	for _, s := range []struct {
		name string
		fn   func(context.Context) (bool, error)
	}{
		{"index the world", p.index},
		{"teacher trajectories", p.teacher},
		{"student base (made + pretrained)", p.student},
		{"LoRA on ReAct", func(ctx context.Context) (bool, error) { return p.lora(ctx, "react", []string{"react"}) }},
		{"LoRA on ReAct+CoT+Reflexion", func(ctx context.Context) (bool, error) {
			return p.lora(ctx, "multi", []string{"react", "cot", "reflexion"})
		}},
		{"rejection sampling round", func(ctx context.Context) (bool, error) { return p.improve(ctx, "rs", improve.LearnerRejection) }},
		{"GRPO round", func(ctx context.Context) (bool, error) { return p.improve(ctx, "grpo", improve.LearnerGRPO) }},
		{"evaluation on dev", p.evaluate},
		{"report", p.report},
	} {
		t0 := time.Now()
		fmt.Fprintf(log, "demo: %s...\n", s.name)
		cached, err := s.fn(ctx)
		if err != nil {
			return res, fmt.Errorf("demo: %s: %w", s.name, err)
		}
		res.Stages = append(res.Stages, Stage{Name: s.name, Elapsed: time.Since(t0), Cached: cached})
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// pipeline holds the state shared by the stages.
type pipeline struct {
	cfg    Config
	dir    string
	st     *store.Store
	log    io.Writer
	res    *Result
	w      *world.World
	corpus string
	// trainRuns are the store runs of the training jobs (their loss curves go
	// into the report).
	trainRuns []string
}

func (p *pipeline) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pipeline) index(ctx context.Context) (bool, error) {
	n, err := p.st.CorpusSize(ctx, p.corpus)
	if err != nil {
		return false, err
	}
	if n > 0 {
		return true, nil
	}
	docs := p.w.Docs()
	for i := range docs {
		docs[i].Corpus = p.corpus
	}
	return false, p.st.AddCorpusDocs(ctx, docs)
}

func (p *pipeline) search(ctx context.Context, noise float64) (agent.Tool, error) {
	// Noise mixes FireAct's two settings: "None", or the recorded observation
	// of another query (the teacher's searches, in the tool cache by then).
	return agent.NewSearch(ctx, p.st, agent.SearchOptions{Backend: agent.SearchLocal, Corpus: p.corpus, Noise: noise,
		NoiseKind: agent.NoiseMixed, Seed: 1})
}

func allIndices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// teacherLLM is the oracle, or the OpenAI-compatible model of TeacherURL.
func (p *pipeline) teacherLLM(m agent.Method) (agent.LLM, agent.Prompt, string, error) {
	if p.cfg.TeacherURL == "" {
		return world.NewOracle(p.w), agent.Prompt{Format: agent.FormatAlpaca}, "world-oracle", nil
	}
	llm, err := agent.NewOpenAI(agent.OpenAIOptions{Model: p.cfg.TeacherModel, BaseURL: p.cfg.TeacherURL, Concurrency: p.cfg.Concurrency})
	if err != nil {
		return nil, agent.Prompt{}, "", err
	}
	return llm, agent.Prompt{Format: agent.FormatFewShot, FewShot: agent.FewShotPrompt(world.TaskName, m)}, p.cfg.TeacherModel, nil
}

// teacher runs the teacher over the train split with each method.
func (p *pipeline) teacher(ctx context.Context) (bool, error) {
	task, err := p.w.Task("train")
	if err != nil {
		return false, err
	}
	search, err := p.search(ctx, 0)
	if err != nil {
		return false, err
	}
	cached := true
	for _, name := range []string{trajectory.MethodReAct, trajectory.MethodCoT, trajectory.MethodReflexion} {
		m, err := agent.MethodByName(name)
		if err != nil {
			return false, err
		}
		llm, prompt, model, err := p.teacherLLM(m)
		if err != nil {
			return false, err
		}
		a := &agent.Agent{LLM: llm, Search: search, Method: m, Prompt: prompt, OracleRetry: true}
		rep, err := agent.RunTask(ctx, agent.RunSpec{Store: p.st, Task: task, Agent: a, Indices: allIndices(task.Len()),
			Concurrency: p.cfg.Concurrency,
			Run: store.Run{Name: "teacher-" + name, Kind: store.KindGenerate, Model: model, Method: name,
				Task: world.TaskName, Split: "train", Seed: int64(p.cfg.World.Seed), Config: "{}"}})
		if err != nil {
			return false, err
		}
		cached = cached && rep.Ran == 0
		p.res.Teacher[name] = int(rep.Summary.EM*float64(rep.Summary.Asked) + 0.5) // right answers: EM is over the questions asked
	}
	return cached, nil
}

// student makes the student's base model and pretrains it on the encyclopedia.
func (p *pipeline) student(ctx context.Context) (bool, error) {
	pre := p.path("student-pretrained.gguf")
	p.res.Base = pre
	if _, err := os.Stat(pre); err == nil {
		return true, nil
	}
	words := append(modelgen.BasicWords(), p.w.Vocabulary()...)
	seen := map[string]bool{}
	var vocab []string
	for _, w := range words {
		if !seen[w] {
			seen[w] = true
			vocab = append(vocab, w)
		}
	}
	base := p.path("student-init.gguf")
	c := p.cfg
	if err := modelgen.WriteLlama(base, modelgen.LlamaConfig{Name: "fireact-demo-student", Vocab: modelgen.SPMVocab(vocab),
		NEmbd: c.NEmbd, NLayer: c.NLayer, NHead: c.NHead, NHeadKV: c.NHead, NFF: c.NFF, NCtx: 4096, Seed: c.StudentSeed, InitStd: 0.02}); err != nil {
		return false, err
	}
	text := p.path("encyclopedia.txt")
	if err := os.WriteFile(text, []byte(p.w.CorpusText()), 0o644); err != nil {
		return false, err
	}
	r, err := finetune.Run(ctx, p.st, finetune.Config{Base: base, Out: pre, TextFile: text, Full: true,
		MaxSteps: c.PretrainSteps, LR: c.PretrainLR, MaxTokens: 256, Cutoff: 256, Val: -1, EvalEvery: -1, SaveEvery: 50,
		Threads: c.Threads, Seed: 1, Progress: p.log})
	if err != nil {
		return false, err
	}
	p.trainRuns = append(p.trainRuns, fmt.Sprint(r.RunID))
	fmt.Fprintf(p.log, "demo: pretrained the student (%d steps, loss %.3f)\n", r.Steps, r.Loss)
	return r.AlreadyDone, nil
}

// lora fine-tunes the pretrained student on the teacher runs of the methods.
func (p *pipeline) lora(ctx context.Context, name string, methods []string) (bool, error) {
	out := p.path("student-" + name + ".lora.gguf")
	p.res.Adapters[name] = out
	var runs []string
	for _, m := range methods {
		runs = append(runs, "teacher-"+m)
	}
	one := 1.0
	c := p.cfg
	r, err := finetune.Run(ctx, p.st, finetune.Config{Base: p.res.Base, Out: out, Runs: runs, MinReward: &one,
		DatasetName: "demo-" + name, MaxSteps: c.LoRASteps, LR: c.LoRALR, Rank: c.Rank, Alpha: float32(2 * c.Rank),
		Targets: llama.TargetsAll | llama.TargetOutput, MaxTokens: c.MaxTokens, Cutoff: c.MaxTokens, Val: -1, EvalEvery: -1,
		SaveEvery: 100, Threads: c.Threads, Seed: 1, Progress: p.log})
	if err != nil {
		return false, err
	}
	p.trainRuns = append(p.trainRuns, fmt.Sprint(r.RunID))
	fmt.Fprintf(p.log, "demo: LoRA %s: %d examples, %d steps, loss %.3f\n", name, r.Examples, r.Steps, r.Loss)
	return r.AlreadyDone, nil
}

// improve runs one round of the learner on the ReAct student (the adapter
// goes to Adapters[name]; evaluate scores it with the others).
func (p *pipeline) improve(ctx context.Context, name, learner string) (bool, error) {
	c := p.cfg
	if c.ImproveQuestions <= 0 {
		return true, nil
	}
	train, err := p.w.Task("train")
	if err != nil {
		return false, err
	}
	dev, err := p.w.Task("dev")
	if err != nil {
		return false, err
	}
	devIdx := allIndices(dev.Len())
	if n := c.DevQuestions; n > 0 && n < len(devIdx) {
		devIdx = devIdx[:n]
	}
	job := "demo-" + name
	done, err := p.st.Rounds(ctx, job)
	if err != nil {
		return false, err
	}
	cfg := improve.Config{Name: job, Dir: p.path("improve-" + name), Base: p.res.Base, Init: p.res.Adapters["react"],
		Train: train, Dev: dev, TrainIndices: allIndices(min(c.ImproveQuestions, train.Len())), DevIndices: devIdx,
		Rounds: 1, K: c.ImproveK, Temperature: 1, MaxTokens: 64, Grammar: false,
		Search:      agent.SearchOptions{Backend: agent.SearchLocal, Corpus: p.corpus, Seed: 1},
		Concurrency: c.Concurrency, Threads: c.Threads, Seed: 1, Learner: learner, Log: p.log}
	if learner == improve.LearnerGRPO {
		cfg.GRPO = improve.GRPOConfig{Epochs: c.GRPOEpochs, LR: c.GRPOLR, KL: 0.05, FormatPenalty: c.GRPOFormatPenalty, MaxTokens: c.MaxTokens}
	} else {
		cfg.TeacherRuns = []string{"teacher-" + trajectory.MethodReAct}
		// Continuing a trained adapter: a third of its learning rate, so the
		// round refines the student rather than retraining it.
		cfg.Training = finetune.Config{MaxSteps: c.RejectionSteps, LR: c.LoRALR / 3, Targets: llama.TargetsAll | llama.TargetOutput,
			MaxTokens: c.MaxTokens, Cutoff: c.MaxTokens, Val: -1, EvalEvery: -1, SaveEvery: 100, Seed: 1}
	}
	res, err := improve.Run(ctx, p.st, cfg)
	if err != nil {
		return false, err
	}
	p.res.Adapters[name] = res.Adapter
	last := res.Rounds[len(res.Rounds)-1]
	if last.TrainingRunID != 0 {
		if tr, err := p.st.TrainingRun(ctx, last.TrainingRunID); err == nil {
			p.trainRuns = append(p.trainRuns, fmt.Sprint(tr.RunID))
		}
	}
	cached := len(done) == len(res.Rounds)
	for _, r := range done {
		cached = cached && r.Status == store.StatusDone
	}
	return cached, nil
}

// evaluate runs the teacher, the prompted student and both fine-tuned students on
// dev, with clean and noisy search.
func (p *pipeline) evaluate(ctx context.Context) (bool, error) {
	task, err := p.w.Task("dev")
	if err != nil {
		return false, err
	}
	idx := allIndices(task.Len())
	if n := p.cfg.DevQuestions; n > 0 && n < len(idx) {
		idx = idx[:n]
	}
	m, err := llama.LoadModel(p.res.Base, llama.ModelOptions{})
	if err != nil {
		return false, err
	}
	defer m.Close()
	engine, err := llama.NewEngine(m, llama.EngineOptions{PerRequest: 4096, Context: llama.ContextOptions{NSeqMax: p.cfg.Concurrency,
		Threads: p.cfg.Threads}})
	if err != nil {
		return false, err
	}
	defer engine.Close()
	adapters := map[string]*llama.Adapter{}
	for name, path := range p.res.Adapters {
		a, err := m.LoadAdapter(path)
		if err != nil {
			return false, err
		}
		defer a.Close()
		adapters[name] = a
	}
	react := agent.ReAct()
	type variant struct {
		name, run string
		llm       agent.LLM
		prompt    agent.Prompt
		adapter   string
		noisy     bool
	}
	student := func(adapter string) agent.LLM {
		l := &agent.LocalLLM{Engine: engine}
		if adapter != "" {
			l.Adapters = []llama.AdapterScale{{Adapter: adapters[adapter], Scale: 1}}
		}
		return l
	}
	alpaca := agent.Prompt{Format: agent.FormatAlpaca}
	fewshot := agent.Prompt{Format: agent.FormatFewShot, FewShot: agent.FewShotPrompt(world.TaskName, react)}
	tllm, tprompt, tmodel, err := p.teacherLLM(react)
	if err != nil {
		return false, err
	}
	variants := []variant{
		{"teacher (" + tmodel + ", ReAct)", "eval-teacher", tllm, tprompt, "", false},
		{"student, prompted (few-shot ReAct)", "eval-prompted", student(""), fewshot, "", false},
		{"student + LoRA (ReAct)", "eval-lora-react", student("react"), alpaca, "react", false},
		{"student + LoRA (ReAct+CoT+Reflexion)", "eval-lora-multi", student("multi"), alpaca, "multi", false},
	}
	if p.cfg.ImproveQuestions > 0 {
		variants = append(variants,
			variant{"student + LoRA (ReAct) + rejection sampling", "eval-lora-rs", student("rs"), alpaca, "rs", false},
			variant{"student + LoRA (ReAct) + GRPO", "eval-lora-grpo", student("grpo"), alpaca, "grpo", false})
	}
	for _, v := range variants[1:] {
		v.noisy, v.run, v.name = true, v.run+"-noisy", v.name+", noisy search"
		variants = append(variants, v)
	}
	cached := true
	for _, v := range variants {
		noise := 0.0
		if v.noisy {
			noise = p.cfg.Noise
		}
		search, err := p.search(ctx, noise)
		if err != nil {
			return false, err
		}
		a := &agent.Agent{LLM: v.llm, Search: search, Method: react, Prompt: v.prompt, Sampling: agent.Sampling{MaxTokens: 64, Seed: 1}}
		adapterPath := ""
		if v.adapter != "" {
			adapterPath = p.res.Adapters[v.adapter]
		}
		rep, err := agent.RunTask(ctx, agent.RunSpec{Store: p.st, Task: task, Agent: a, Indices: idx, Concurrency: p.cfg.Concurrency,
			Run: store.Run{Name: v.run, Kind: store.KindEval, Model: p.res.Base, Adapter: adapterPath, Method: react.Name,
				Task: world.TaskName, Split: "dev", Noise: noise, Seed: 1, Config: "{}"}})
		if err != nil {
			return false, err
		}
		cached = cached && rep.Ran == 0
		s := rep.Summary
		p.res.Rows = append(p.res.Rows, Row{Name: v.name, Run: v.run, Noise: noise, EM: s.EM, F1: s.F1, Turns: s.MeanTurns,
			N: s.Episodes, Seconds: s.SecondsPerQ})
		fmt.Fprintf(p.log, "demo: %-52s EM %.3f\n", v.name, s.EM)
	}
	return cached, nil
}

func (p *pipeline) report(ctx context.Context) (bool, error) {
	var runs []string
	for _, r := range p.res.Rows {
		runs = append(runs, r.Run)
	}
	runs = append(runs, p.trainRuns...)
	rep, err := report.Build(ctx, p.st, report.Options{Runs: runs, DiffA: "eval-prompted", DiffB: "eval-lora-react", MaxDiffRows: 20})
	if err != nil {
		return false, err
	}
	p.res.Report = p.path("report.html")
	f, err := os.Create(p.res.Report)
	if err != nil {
		return false, err
	}
	if err := report.HTML(f, rep); err != nil {
		f.Close()
		return false, err
	}
	return false, f.Close()
}

// Print writes the experiment's table, stage times and locations.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "\nFireAct in miniature (dev questions, ReAct at evaluation)\n\n")
	fmt.Fprintf(w, "%-52s %6s %6s %6s %6s %8s\n", "agent", "noise", "EM", "F1", "turns", "s/q")
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%-52s %6.2f %6.3f %6.3f %6.2f %8.3f\n", row.Name, row.Noise, row.EM, row.F1, row.Turns, row.Seconds)
	}
	fmt.Fprintf(w, "\nteacher trajectories (successful): ")
	for _, m := range []string{"react", "cot", "reflexion"} {
		fmt.Fprintf(w, "%s %d  ", m, r.Teacher[m])
	}
	fmt.Fprintf(w, "\n\nstages:\n")
	for _, s := range r.Stages {
		c := ""
		if s.Cached {
			c = " (cached)"
		}
		fmt.Fprintf(w, "  %-40s %8.1fs%s\n", s.Name, s.Elapsed.Seconds(), c)
	}
	fmt.Fprintf(w, "  %-40s %8.1fs\n", "total", r.Elapsed.Seconds())
	fmt.Fprintf(w, "\ndatabase: %s\nstudent:  %s\nadapters:", r.DB, r.Base)
	for _, k := range []string{"react", "multi", "rs", "grpo"} {
		if a := r.Adapters[k]; a != "" {
			fmt.Fprintf(w, " %s", a)
		}
	}
	fmt.Fprintf(w, "\nreport:   %s\n", r.Report)
}
