// Package improve runs rejection-sampling rounds on a student agent (STaR,
// ReST-EM): in each round the current student (a GGUF base and its LoRA
// adapter) samples k trajectories per training question at a temperature
// above 0 through the real agent loop and tools, the samples whose reward
// passes a threshold (EM, or F1 at least a value) are kept, mixed with the
// teacher's data by ratio, and the adapter is retrained starting from the
// previous one; the new adapter is evaluated on dev. Every round is recorded
// in the store (store.Round) with its samples, kept counts and dev score.
//
// improve sits above agent and finetune, which never import each other (as
// demo does): rollouts are agent runs in the store, training is a finetune job
// reading a store dataset. A job resumes where it stopped: finished rounds are
// skipped, the sampling and dev runs resume as runs do, the round's training
// mix is found again by name, and training continues from finetune's
// checkpoint.
package improve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// Defaults of Config.
const (
	DefaultRounds      = 2
	DefaultK           = 4
	DefaultTemperature = 0.7
	DefaultMaxTokens   = 256
)

// Mix keys: the ratio of the teacher's episodes and of the kept samples in a
// round's training mix.
const (
	MixTeacher = "teacher"
	MixSelf    = "self"
)

// Config is one improve job. The same job run again resumes it.
type Config struct {
	// Name names the job: its rounds in the store and its records, runs
	// "NAME/rN/sample-J" (sample J of round N) and "NAME/rN/dev", datasets
	// "NAME/teacher" and "NAME/rN/train".
	Name string
	// Dir receives the adapters, Dir/round-N.lora.gguf, with finetune's
	// checkpoints beside them.
	Dir string
	// Base is the student's GGUF backbone. Init is the adapter of round 0 (the
	// fine-tuned student); "" starts from the base alone and round 1 trains a
	// fresh adapter.
	Base string
	Init string

	// Train and Dev are the task splits sampled and evaluated; TrainIndices and
	// DevIndices the questions of each (nil: all).
	Train, Dev               tasks.Task
	TrainIndices, DevIndices []int

	// TeacherRuns and TeacherDataset are the teacher data (run names or ids; a
	// dataset name or id). The runs' episodes count when their reward is at
	// least 1 (FireAct trains on successful trajectories).
	TeacherRuns    []string
	TeacherDataset string

	// Rounds is the number of rounds after round 0 (default DefaultRounds); a
	// rerun with more continues the job.
	Rounds int
	// K samples per question (default DefaultK) at Temperature (> 0, default
	// DefaultTemperature) and TopP (0: 1).
	K           int
	Temperature float64
	TopP        float64
	// MinF1 > 0 keeps a sample whose F1 is at least MinF1; 0 keeps those with
	// EM 1. Only finished episodes (status done) are kept, and a trajectory
	// sampled twice for one question is kept once.
	MinF1 float64
	// Mix are the ratios of the training mix by source, MixTeacher and MixSelf:
	// a source of n episodes contributes round(n·ratio), sampled without
	// replacement below 1 and repeated whole (plus a sampled remainder) above,
	// as finetune's --mix. Empty: both 1; a source not named in a non-empty map
	// is left out.
	Mix map[string]float64

	// Method is the agent's method (default react); Format its prompt format
	// (default alpaca, FireAct's fine-tuning format) and FewShot its few-shot
	// text (default the task's built-in one, shown only by the few-shot
	// format); MaxTokens bounds a turn (default DefaultMaxTokens), MaxTurns an
	// episode (0: the method's); Grammar constrains turns with GBNF.
	Method    string
	Format    agent.Format
	FewShot   string
	MaxTokens int
	MaxTurns  int
	Grammar   bool
	// Search is the search tool of both the sampling and the dev runs.
	Search agent.SearchOptions

	// Training is the template of every round's training job: Base, Out,
	// InitAdapter and the data source are set per round, the rest is used as
	// given (finetune's defaults for what is left zero).
	Training finetune.Config

	// Concurrency is the number of episodes in flight on the shared engine
	// (default 8); Threads its CPU threads (0: all); GPULayers its offload.
	Concurrency int
	Threads     int
	GPULayers   int
	// Seed seeds sampling (sample J of round N draws with Seed + N·K + J).
	Seed int64

	// Learner is how a round learns from its samples: LearnerRejection
	// (default) or LearnerGRPO, configured by GRPO. With GRPO the teacher
	// data, Mix, MinF1 and Training are not used.
	Learner string
	GRPO    GRPOConfig

	// Log receives progress lines (nil: none). OnEvent, when set, is called as
	// the job advances (from one goroutine at a time).
	Log     io.Writer
	OnEvent func(Event)
}

// Event is a step of a job: a phase starting (Done 0), a sampled or
// evaluated episode recorded, or a GRPO step taken.
type Event struct {
	Round int
	Phase string // store.PhaseSample, PhaseSelect, PhaseTrain, PhaseEval
	Done  int    // episodes recorded (GRPO steps taken) in this phase by this process
	// Total is the phase's episodes: all K·questions samples (on a resume some
	// were recorded before), or the dev questions this process evaluates; for
	// GRPO's training, the steps this process takes.
	Total int
}

// Result is what a job did: every round so far, round 0 first.
type Result struct {
	Rounds []store.Round
	// Adapter is the last round's adapter.
	Adapter string
	// Resumed lists the rounds this process continued rather than started.
	Resumed []int
	Elapsed time.Duration
}

func (c *Config) defaults() error {
	if strings.TrimSpace(c.Name) == "" {
		return errors.New("improve: a job name is required")
	}
	if c.Dir == "" || c.Base == "" {
		return errors.New("improve: an output directory and a base model are required")
	}
	if c.Train == nil || c.Dev == nil {
		return errors.New("improve: a train and a dev split are required")
	}
	switch c.Learner {
	case "":
		c.Learner = LearnerRejection
	case LearnerRejection, LearnerGRPO:
	default:
		return fmt.Errorf("improve: learner %q: %s or %s", c.Learner, LearnerRejection, LearnerGRPO)
	}
	if c.Learner == LearnerGRPO {
		if err := c.GRPO.defaults(); err != nil {
			return err
		}
	} else if len(c.TeacherRuns) == 0 && c.TeacherDataset == "" {
		return errors.New("improve: teacher data is required (teacher runs or a dataset)")
	}
	if c.Rounds <= 0 {
		c.Rounds = DefaultRounds
	}
	if c.K <= 0 {
		c.K = DefaultK
	}
	if c.Temperature == 0 {
		c.Temperature = DefaultTemperature
	}
	if c.Temperature < 0 {
		return fmt.Errorf("improve: temperature %g: sampling k different trajectories needs a temperature above 0", c.Temperature)
	}
	if c.MinF1 < 0 || c.MinF1 > 1 {
		return fmt.Errorf("improve: min F1 %g is outside [0, 1]", c.MinF1)
	}
	if len(c.Mix) == 0 {
		c.Mix = map[string]float64{MixTeacher: 1, MixSelf: 1}
	}
	for k, v := range c.Mix {
		if k != MixTeacher && k != MixSelf {
			return fmt.Errorf("improve: mix %q: the sources are %s and %s", k, MixTeacher, MixSelf)
		}
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("improve: mix %s=%g: a ratio is a number >= 0", k, v)
		}
	}
	if c.Method == "" {
		c.Method = trajectory.MethodReAct
	}
	if c.Format == "" {
		c.Format = agent.FormatAlpaca
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = DefaultMaxTokens
	}
	if c.Concurrency <= 0 {
		c.Concurrency = agent.DefaultLocalConcurrency
	}
	if c.Threads <= 0 {
		c.Threads = runtime.NumCPU()
	}
	if c.TrainIndices == nil {
		c.TrainIndices = allIndices(c.Train.Len())
	}
	if c.DevIndices == nil {
		c.DevIndices = allIndices(c.Dev.Len())
	}
	if len(c.TrainIndices) == 0 || len(c.DevIndices) == 0 {
		return errors.New("improve: no train or no dev questions selected")
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

func allIndices(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// identity is the configuration a job records with its rounds: everything that
// shapes them. A rerun with another identity is refused (naming the field)
// instead of mixing two jobs; the number of rounds, speed settings and the log
// are not part of it.
type identity struct {
	Base           string             `json:"base"`
	BaseHash       string             `json:"base_sha256"`
	Init           string             `json:"init,omitempty"`
	InitHash       string             `json:"init_sha256,omitempty"`
	Train          string             `json:"train"`
	Dev            string             `json:"dev"`
	TrainQuestions string             `json:"train_questions"` // the indices, compactly
	DevQuestions   string             `json:"dev_questions"`
	TeacherRuns    []string           `json:"teacher_runs,omitempty"`
	TeacherDataset string             `json:"teacher_dataset,omitempty"`
	K              int                `json:"k"`
	Temperature    float64            `json:"temperature"`
	TopP           float64            `json:"top_p"`
	MinF1          float64            `json:"min_f1"`
	Mix            map[string]float64 `json:"mix"`
	Method         string             `json:"method"`
	Format         string             `json:"format"`
	PromptHash     string             `json:"prompt_sha256"`
	MaxTokens      int                `json:"max_tokens"`
	MaxTurns       int                `json:"max_turns"`
	Grammar        bool               `json:"grammar"`
	Search         string             `json:"search"`
	Corpus         string             `json:"corpus,omitempty"`
	Seed           int64              `json:"seed"`
	Training       json.RawMessage    `json:"training"`
	// Learner and GRPO are recorded only for GRPO jobs, so that rejection
	// sampling jobs recorded before learners existed still resume.
	Learner string      `json:"learner,omitempty"`
	GRPO    *GRPOConfig `json:"grpo,omitempty"`
}

// trainingIdentity is the training template without what is set per round or
// only changes speed and output.
func trainingIdentity(t finetune.Config) json.RawMessage {
	t.Base, t.Out, t.InitAdapter, t.Runs, t.Dataset, t.DataFile, t.TextFile = "", "", "", nil, "", "", ""
	t.MinReward, t.Mix, t.TaskMix, t.DatasetName = nil, nil, nil, ""
	t.Threads, t.Progress = 0, nil
	b, _ := json.Marshal(t)
	return b
}

func indexList(idx []int) string {
	var b strings.Builder
	for i, x := range idx {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(x))
	}
	return agent.TextHash(b.String())[:16] + fmt.Sprintf("/%d", len(idx))
}

// checkIdentity returns an error naming the first field in which the recorded
// job differs from this one.
func checkIdentity(job, recorded string, now identity) error {
	var a, b map[string]json.RawMessage
	if err := json.Unmarshal([]byte(recorded), &a); err != nil {
		return fmt.Errorf("improve: job %q: recorded configuration: %w", job, err)
	}
	nb, _ := json.Marshal(now)
	red, err := store.RedactConfig(string(nb))
	if err != nil {
		return fmt.Errorf("improve: %w", err)
	}
	json.Unmarshal([]byte(red), &b)
	keys := make([]string, 0, len(b))
	for k := range b {
		keys = append(keys, k)
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if string(a[k]) != string(b[k]) {
			return fmt.Errorf("improve: job %q was recorded with another configuration: %s is %s, now %s; a new job name starts a new job",
				job, k, orNone(a[k]), orNone(b[k]))
		}
	}
	return nil
}

func orNone(b json.RawMessage) string {
	if len(b) == 0 {
		return "unset"
	}
	return string(b)
}

// job is the state of one Run.
type job struct {
	cfg      Config
	s        *store.Store
	id       identity
	idJSON   string
	m        *llama.Model
	engine   *llama.Engine
	adapters map[string]*llama.Adapter // by path, loaded once
	search   agent.Tool
	baseHash string
	teacher  []int64 // the teacher's episodes
	rounds   []store.Round
	res      *Result
	evMu     sync.Mutex
}

// Run runs the job's missing rounds (resuming an interrupted one) and returns
// every round. Cancelling ctx stops it with what is recorded kept: the round
// is marked interrupted and the same job run again continues it.
func Run(ctx context.Context, s *store.Store, cfg Config) (*Result, error) {
	start := time.Now()
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("improve: %w", err)
	}
	j := &job{cfg: cfg, s: s, res: &Result{}, adapters: map[string]*llama.Adapter{}}
	if err := j.identify(); err != nil {
		return nil, err
	}
	var err error
	if j.rounds, err = s.Rounds(ctx, cfg.Name); err != nil {
		return nil, fmt.Errorf("improve: %w", err)
	}
	if len(j.rounds) > 0 {
		if err := checkIdentity(cfg.Name, j.rounds[0].Config, j.id); err != nil {
			return nil, err
		}
	}
	if err := j.open(ctx); err != nil {
		return nil, err
	}
	defer j.close()
	if cfg.Learner == LearnerRejection {
		if err := j.teacherData(ctx); err != nil {
			return nil, err
		}
	}
	for r := 0; r <= cfg.Rounds; r++ {
		if err := j.round(ctx, r); err != nil {
			j.res.Rounds = j.rounds
			return j.res, err
		}
	}
	j.res.Rounds = j.rounds[:cfg.Rounds+1]
	j.res.Adapter = j.rounds[cfg.Rounds].Adapter
	j.res.Elapsed = time.Since(start)
	return j.res, nil
}

func (j *job) identify() error {
	c := &j.cfg
	var err error
	if j.baseHash, err = store.FileHash(c.Base); err != nil {
		return fmt.Errorf("improve: base model: %w", err)
	}
	base, _ := filepath.Abs(c.Base)
	id := identity{Base: base, BaseHash: j.baseHash, Train: c.Train.Name() + "/" + c.Train.Split(),
		Dev: c.Dev.Name() + "/" + c.Dev.Split(), TrainQuestions: indexList(c.TrainIndices), DevQuestions: indexList(c.DevIndices),
		TeacherRuns: c.TeacherRuns, TeacherDataset: c.TeacherDataset, K: c.K, Temperature: c.Temperature, TopP: c.TopP,
		MinF1: c.MinF1, Mix: c.Mix, Method: c.Method, Format: string(c.Format), PromptHash: agent.TextHash(c.FewShot),
		MaxTokens: c.MaxTokens, MaxTurns: c.MaxTurns, Grammar: c.Grammar, Search: c.Search.Backend, Corpus: c.Search.Corpus,
		Seed: c.Seed, Training: trainingIdentity(c.Training)}
	if c.Learner == LearnerGRPO {
		g := c.GRPO
		id.Learner, id.GRPO = c.Learner, &g
	}
	if c.Init != "" {
		id.Init, _ = filepath.Abs(c.Init)
		if id.InitHash, err = store.FileHash(c.Init); err != nil {
			return fmt.Errorf("improve: init adapter: %w", err)
		}
	}
	j.id = id
	b, _ := json.Marshal(id)
	j.idJSON = string(b)
	return nil
}

// agentFor builds the agent of the sampling (temperature, seed) or the dev
// runs (greedy) on llm.
func (j *job) agentFor(llm agent.LLM, temperature float64, seed int64) (*agent.Agent, error) {
	c := &j.cfg
	a, err := agent.NewAgent(agent.AgentOptions{Method: c.Method, MaxTurns: c.MaxTurns, Format: string(c.Format),
		Task: c.Train.Name(), Grammar: c.Grammar,
		Sampling: agent.Sampling{Temperature: temperature, TopP: c.TopP, MaxTokens: c.MaxTokens, Seed: seed}}, j.search)
	if err != nil {
		return nil, fmt.Errorf("improve: %w", err)
	}
	if c.FewShot != "" {
		a.Prompt.FewShot = c.FewShot
	}
	a.LLM = llm
	return a, nil
}

// open loads the base, the search tool and the engine every round shares.
func (j *job) open(ctx context.Context) error {
	c := &j.cfg
	var err error
	if j.search, err = agent.NewSearch(ctx, j.s, c.Search); err != nil {
		return fmt.Errorf("improve: %w", err)
	}
	if j.m, err = llama.LoadModel(c.Base, llama.ModelOptions{GPULayers: c.GPULayers}); err != nil {
		return fmt.Errorf("improve: %w", err)
	}
	a, err := j.agentFor(nil, c.Temperature, c.Seed)
	if err != nil {
		return err
	}
	need, err := a.ContextNeed(j.m)
	if err != nil {
		return fmt.Errorf("improve: %w", err)
	}
	j.engine, err = llama.NewEngine(j.m, llama.EngineOptions{PerRequest: need,
		Context: llama.ContextOptions{NSeqMax: c.Concurrency, Threads: c.Threads}})
	if err != nil {
		return fmt.Errorf("improve: %w", err)
	}
	return nil
}

func (j *job) close() {
	if j.engine != nil {
		j.engine.Close()
	}
	for _, a := range j.adapters {
		a.Close()
	}
	if j.m != nil {
		j.m.Close()
	}
}

// teacherData records (or finds again) the job's teacher dataset.
func (j *job) teacherData(ctx context.Context) error {
	c := &j.cfg
	name := c.Name + "/teacher"
	d, err := j.s.DatasetByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		sel := finetune.Selection{Runs: c.TeacherRuns, Dataset: c.TeacherDataset, Seed: uint64(c.Seed), Name: name}
		if len(c.TeacherRuns) > 0 {
			one := 1.0
			sel.MinReward = &one
		}
		d, _, _, err = finetune.BuildDataset(ctx, j.s, sel)
		if err != nil {
			return fmt.Errorf("improve: teacher data: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("improve: %w", err)
	}
	if j.teacher, err = j.s.DatasetEpisodeIDs(ctx, d.ID); err != nil {
		return fmt.Errorf("improve: teacher data: %w", err)
	}
	fmt.Fprintf(j.cfg.Log, "improve: teacher data %q: %d episodes\n", name, len(j.teacher))
	return nil
}

func (j *job) event(e Event) {
	if j.cfg.OnEvent == nil {
		return
	}
	j.evMu.Lock()
	defer j.evMu.Unlock()
	j.cfg.OnEvent(e)
}

// save records the round's row (with a context that outlives a cancel, so
// that "interrupted" lands).
func (j *job) save(ctx context.Context, r *store.Round) error {
	if err := j.s.SaveRound(context.WithoutCancel(ctx), r); err != nil {
		return fmt.Errorf("improve: %w", err)
	}
	return nil
}

// round runs (or resumes, or skips when done) round n.
func (j *job) round(ctx context.Context, n int) error {
	c := &j.cfg
	if n < len(j.rounds) && j.rounds[n].Status == store.StatusDone {
		r := j.rounds[n]
		if r.Adapter != "" {
			// A finished round's adapter is what the next one starts from: a
			// file changed since would silently fork the job.
			h, err := store.FileHash(r.Adapter)
			if err != nil {
				return fmt.Errorf("improve: round %d is done but its adapter is unreadable: %w", n, err)
			}
			if h != r.AdapterHash {
				return fmt.Errorf("improve: round %d's adapter %s is not the file it wrote (sha256 %s, recorded %s)", n, r.Adapter, h[:12], r.AdapterHash[:min(12, len(r.AdapterHash))])
			}
		}
		return nil
	}
	var r store.Round
	if n < len(j.rounds) {
		r = j.rounds[n]
		j.res.Resumed = append(j.res.Resumed, n)
		fmt.Fprintf(c.Log, "improve: resuming round %d (%s)\n", n, r.Phase)
	} else {
		r = store.Round{Job: c.Name, Round: n, Config: j.idJSON}
		j.rounds = append(j.rounds, r)
	}
	r.Config, r.Status = j.idJSON, store.StatusRunning
	err := j.runRound(ctx, &r)
	if err != nil {
		r.Status = store.StatusFailed
		if ctx.Err() != nil {
			r.Status = store.StatusInterrupted
		}
		j.rounds[n] = r
		return errors.Join(err, j.save(ctx, &r))
	}
	r.Status, r.Phase, r.FinishedAt = store.StatusDone, store.PhaseDone, time.Now().UTC()
	j.rounds[n] = r
	if err := j.save(ctx, &r); err != nil {
		return err
	}
	fmt.Fprintf(c.Log, "improve: round %d: %d samples, %d passed, %d kept (%d questions solved), trained on %d kept + %d teacher, dev EM %.3f\n",
		n, r.Samples, r.Passed, r.Kept, r.Solved, r.SelfExamples, r.TeacherExamples, r.DevEM)
	return nil
}

func (j *job) runRound(ctx context.Context, r *store.Round) error {
	c := &j.cfg
	if r.Round == 0 {
		// The starting student: evaluated only.
		r.Adapter = c.Init
		if c.Init != "" {
			r.AdapterHash = j.id.InitHash
		}
		r.Phase = store.PhaseEval
		if err := j.save(ctx, r); err != nil {
			return err
		}
		return j.evaluate(ctx, r)
	}
	prev := j.rounds[r.Round-1]
	r.AdapterIn = prev.Adapter
	r.Questions, r.K = len(c.TrainIndices), c.K
	phases := []struct {
		name string
		fn   func(context.Context, *store.Round) error
	}{
		{store.PhaseSample, j.sample},
		{store.PhaseSelect, j.selectMix},
		{store.PhaseTrain, j.train},
		{store.PhaseEval, j.evaluate},
	}
	if c.Learner == LearnerGRPO {
		// Every sample trains, weighted by its advantage: nothing to select.
		phases = append(phases[:1], phases[2:]...)
		phases[1].fn = j.grpoTrain
	}
	// A resumed round redoes its phases from the one it stopped in; the
	// finished ones before it only reread what they recorded.
	for _, p := range phases {
		if r.Phase == "" || phaseIndex(p.name) >= phaseIndex(r.Phase) {
			r.Phase = p.name
		}
		if err := j.save(ctx, r); err != nil {
			return err
		}
		j.event(Event{Round: r.Round, Phase: p.name})
		if err := p.fn(ctx, r); err != nil {
			return fmt.Errorf("improve: round %d: %s: %w", r.Round, p.name, err)
		}
	}
	return nil
}

func phaseIndex(p string) int {
	for i, x := range []string{store.PhaseSample, store.PhaseSelect, store.PhaseTrain, store.PhaseEval, store.PhaseDone} {
		if x == p {
			return i
		}
	}
	return -1
}

// adapterPath is where round n's adapter goes.
func (j *job) adapterPath(n int) string {
	return filepath.Join(j.cfg.Dir, fmt.Sprintf("round-%d.lora.gguf", n))
}

// student is the LLM of the base with the adapter at path ("" : none) and
// its identity for the run records. Adapters stay loaded until the job ends:
// the engine keys its cached KV cells by adapter, and a freed adapter's
// successor could otherwise be taken for it.
func (j *job) student(path string) (*agent.LocalLLM, []string, error) {
	llm := &agent.LocalLLM{Engine: j.engine}
	if path == "" {
		return llm, nil, nil
	}
	a, ok := j.adapters[path]
	if !ok {
		var err error
		if a, err = j.m.LoadAdapter(path); err != nil {
			return nil, nil, fmt.Errorf("improve: %w", err)
		}
		j.adapters[path] = a
	}
	h, err := store.FileHash(path)
	if err != nil {
		return nil, nil, fmt.Errorf("improve: %w", err)
	}
	llm.Adapters = []llama.AdapterScale{{Adapter: a, Scale: 1}}
	return llm, []string{h + "@1"}, nil
}

// runRecord is the run record of an agent run of this job: RunConfig as the
// CLI records it, so that a resume checks model, adapter, prompt and sampling.
func (j *job) runRecord(a *agent.Agent, adapter string, adapterIDs []string, name, kind string, t tasks.Task) store.Run {
	rc := agent.NewRunConfig(nil, a, j.cfg.Search)
	rc.Backend, rc.Model, rc.ModelID, rc.AdapterIDs = agent.BackendLocal, j.cfg.Base, j.baseHash, adapterIDs
	if adapter != "" {
		rc.Adapters = []string{adapter}
	}
	rc.Concurrency, rc.Threads, rc.GPULayers, rc.PerRequestKV = j.cfg.Concurrency, j.cfg.Threads, j.cfg.GPULayers, j.engine.SeqContext()
	return rc.StoreRun(name, kind, t.Name(), t.Split())
}

func (j *job) sampleRun(n, k int) string { return fmt.Sprintf("%s/r%d/sample-%d", j.cfg.Name, n, k) }

// sample has the student answer every train question K times, the K runs in
// flight together on the one engine so that the copies of a question are
// decoded side by side and share their prompt's KV cells.
func (j *job) sample(ctx context.Context, r *store.Round) error {
	c := &j.cfg
	t0 := time.Now()
	llm, ids, err := j.student(r.AdapterIn)
	if err != nil {
		return err
	}
	before := j.engine.Stats()
	per := max(1, c.Concurrency/c.K)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		done  int
		errs  = make([]error, c.K)
		total = c.K * len(c.TrainIndices)
	)
	for k := 0; k < c.K; k++ {
		a, err := j.agentFor(llm, c.Temperature, c.Seed+int64(r.Round*c.K+k))
		if err != nil {
			return err
		}
		spec := agent.RunSpec{Store: j.s, Task: c.Train, Agent: a, Indices: c.TrainIndices, Concurrency: per,
			Run: j.runRecord(a, r.AdapterIn, ids, j.sampleRun(r.Round, k), store.KindGenerate, c.Train),
			Progress: func(agent.Progress) {
				mu.Lock()
				done++
				d := done
				mu.Unlock()
				j.event(Event{Round: r.Round, Phase: store.PhaseSample, Done: d, Total: total})
			}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[k] = agent.RunTask(ctx, spec)
		}()
	}
	wg.Wait()
	after := j.engine.Stats()
	r.PromptTokens += after.PromptTokens - before.PromptTokens
	r.PromptDecoded += after.PromptDecoded - before.PromptDecoded
	r.SampleSeconds += time.Since(t0).Seconds()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(c.Log, "improve: round %d: sampled %d x %d in %.1fs; prompt tokens %d, decoded %d (%.0f%% from shared KV cells)\n",
		r.Round, c.K, len(c.TrainIndices), time.Since(t0).Seconds(), r.PromptTokens, r.PromptDecoded,
		100*float64(r.PromptTokens-r.PromptDecoded)/float64(max(r.PromptTokens, 1)))
	return nil
}

// passes says whether a sampled episode is kept by the threshold.
func (j *job) passes(ep store.Episode) bool {
	if ep.Status != store.EpisodeDone {
		return false
	}
	if j.cfg.MinF1 > 0 {
		return ep.F1 >= j.cfg.MinF1
	}
	return ep.EM >= 1
}

// mixRecipe is the recipe recorded with a round's training mix.
type mixRecipe struct {
	Job            string             `json:"improve_job"`
	Round          int                `json:"round"`
	SampleRuns     []int64            `json:"sample_runs"`
	TeacherDataset string             `json:"teacher_dataset"`
	MinF1          float64            `json:"min_f1,omitempty"`
	Mix            map[string]float64 `json:"mix"`
	Samples        int                `json:"samples"`
	Passed         int                `json:"passed"`
	Kept           int                `json:"kept"`
	Solved         int                `json:"solved"`
	Self           int                `json:"self"`
	Teacher        int                `json:"teacher"`
	Seed           uint64             `json:"seed"`
}

// selectMix keeps the passing samples (one of each distinct trajectory per
// question) and records them, mixed with the teacher's episodes, as the
// round's training set. A resumed round finds the set it recorded.
func (j *job) selectMix(ctx context.Context, r *store.Round) error {
	c := &j.cfg
	name := fmt.Sprintf("%s/r%d/train", c.Name, r.Round)
	if d, err := j.s.DatasetByName(ctx, name); err == nil {
		// Recorded before a crash or a cancel: training reads this set, so the
		// round reports the counts it was made from (a resumed sampling phase
		// may have retried an errored episode since).
		var rec mixRecipe
		if err := json.Unmarshal([]byte(d.Recipe), &rec); err != nil {
			return fmt.Errorf("dataset %q: recipe: %w", name, err)
		}
		r.DatasetID, r.Samples, r.Passed, r.Kept, r.Solved = d.ID, rec.Samples, rec.Passed, rec.Kept, rec.Solved
		r.SelfExamples, r.TeacherExamples = rec.Self, rec.Teacher
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var runIDs []int64
	type key struct {
		q    int64
		text string
	}
	seen := map[key]bool{}
	solved := map[int64]bool{}
	var kept []int64
	r.Samples, r.Passed = 0, 0
	for k := 0; k < c.K; k++ {
		run, err := j.s.RunByName(ctx, j.sampleRun(r.Round, k))
		if err != nil {
			return err
		}
		runIDs = append(runIDs, run.ID)
		eps, err := j.s.Episodes(ctx, run.ID)
		if err != nil {
			return err
		}
		for _, ep := range eps {
			r.Samples++
			if !j.passes(ep) {
				continue
			}
			r.Passed++
			t, err := j.s.Trajectory(ctx, ep.ID)
			if err != nil {
				return err
			}
			kk := key{ep.QuestionID, trajectory.Render(t)}
			if seen[kk] {
				continue
			}
			seen[kk] = true
			solved[ep.QuestionID] = true
			kept = append(kept, ep.ID)
		}
	}
	r.Kept, r.Solved = len(kept), len(solved)
	seed := uint64(c.Seed)*1_000_003 + uint64(r.Round)
	self := mixSource(kept, ratio(c.Mix, MixSelf), seed, MixSelf)
	teacher := mixSource(j.teacher, ratio(c.Mix, MixTeacher), seed, MixTeacher)
	r.SelfExamples, r.TeacherExamples = len(self), len(teacher)
	ids := append(append([]int64{}, self...), teacher...)
	if len(ids) == 0 {
		return fmt.Errorf("nothing to train on: %d of %d samples passed and the mix takes %d teacher episodes", r.Passed, r.Samples, len(teacher))
	}
	rec, _ := json.Marshal(mixRecipe{Job: c.Name, Round: r.Round, SampleRuns: runIDs, TeacherDataset: c.Name + "/teacher",
		MinF1: c.MinF1, Mix: c.Mix, Samples: r.Samples, Passed: r.Passed, Kept: r.Kept, Solved: r.Solved,
		Self: len(self), Teacher: len(teacher), Seed: seed})
	d := store.Dataset{Name: name, Recipe: string(rec)}
	if _, err := j.s.CreateDataset(ctx, &d, ids); err != nil {
		return err
	}
	r.DatasetID = d.ID
	return nil
}

func ratio(m map[string]float64, k string) float64 { return m[k] }

// mixSource takes round(len(ids)·ratio) of ids: every one ⌊ratio⌋ times, and
// a remainder drawn without replacement from a generator of its own (seeded by
// the source's name, so one source's ratio never reshuffles the other).
func mixSource(ids []int64, ratio float64, seed uint64, name string) []int64 {
	if len(ids) == 0 {
		return nil
	}
	want := int(math.Round(ratio * float64(len(ids))))
	whole, rest := want/len(ids), want%len(ids)
	var out []int64
	for range whole {
		out = append(out, ids...)
	}
	if rest > 0 {
		var h uint64 = 14695981039346656037 // FNV-1a of the name
		for _, b := range []byte(name) {
			h = (h ^ uint64(b)) * 1099511628211
		}
		perm := rand.New(rand.NewPCG(seed, h)).Perm(len(ids))[:rest]
		sort.Ints(perm) // keep the ids' order: adjacent repeats, readable sets
		for _, p := range perm {
			out = append(out, ids[p])
		}
	}
	return out
}

// train retrains the adapter on the round's mix, starting from the previous
// round's adapter; finetune checkpoints and resumes it.
func (j *job) train(ctx context.Context, r *store.Round) error {
	c := &j.cfg
	t0 := time.Now()
	tc := c.Training
	tc.Base, tc.Out, tc.InitAdapter = c.Base, j.adapterPath(r.Round), r.AdapterIn
	tc.Runs, tc.Dataset, tc.DataFile, tc.TextFile = nil, strconv.FormatInt(r.DatasetID, 10), "", ""
	tc.MinReward, tc.Mix, tc.TaskMix, tc.DatasetName = nil, nil, nil, ""
	if tc.Threads <= 0 {
		tc.Threads = c.Threads
	}
	if tc.Progress == nil {
		tc.Progress = c.Log
	}
	res, err := finetune.Run(ctx, j.s, tc)
	r.TrainSeconds += time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	r.Adapter, r.AdapterHash, r.TrainingRunID, r.TrainLoss = tc.Out, res.OutHash, res.TrainingRunID, res.Loss
	fmt.Fprintf(c.Log, "improve: round %d: trained %d steps on %d examples, loss %.3f\n", r.Round, res.Steps, res.Examples, res.Loss)
	return nil
}

// evaluate runs the round's adapter greedily on dev.
func (j *job) evaluate(ctx context.Context, r *store.Round) error {
	c := &j.cfg
	t0 := time.Now()
	llm, ids, err := j.student(r.Adapter)
	if err != nil {
		return err
	}
	a, err := j.agentFor(llm, 0, c.Seed)
	if err != nil {
		return err
	}
	done := 0
	rep, err := agent.RunTask(ctx, agent.RunSpec{Store: j.s, Task: c.Dev, Agent: a, Indices: c.DevIndices, Concurrency: c.Concurrency,
		Run: j.runRecord(a, r.Adapter, ids, fmt.Sprintf("%s/r%d/dev", c.Name, r.Round), store.KindEval, c.Dev),
		Progress: func(p agent.Progress) {
			done++
			j.event(Event{Round: r.Round, Phase: store.PhaseEval, Done: done, Total: p.Total})
		}})
	r.EvalSeconds += time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	r.DevRunID, r.DevEM, r.DevF1 = rep.Run.ID, rep.Summary.EM, rep.Summary.F1
	return nil
}
