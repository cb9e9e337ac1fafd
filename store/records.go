package store

import (
	"time"

	"github.com/fireact/fireact/store/trajectory"
)

// Run kinds.
const (
	KindGenerate = "generate"
	KindEval     = "eval"
	KindTrain    = "train"
	KindImport   = "import"
)

// RunStatus is the state of a run or a training run.
type RunStatus string

// Run and training run statuses.
const (
	StatusRunning     RunStatus = "running"
	StatusDone        RunStatus = "done"
	StatusFailed      RunStatus = "failed"
	StatusInterrupted RunStatus = "interrupted"
)

// EpisodeStatus is how an episode ended; the set is defined with the
// trajectory (store/trajectory), which the agent shares without importing
// the store.
type EpisodeStatus = trajectory.Status

// Episode statuses. An episode with EpisodeError is not finished: resuming the
// run retries it. EpisodeUnfinished means the agent ran out of steps, which is a
// result, not a failure.
const (
	EpisodeDone       = trajectory.StatusDone
	EpisodeUnfinished = trajectory.StatusUnfinished
	EpisodeError      = trajectory.StatusError
)

// Run is one generate, eval, train or import run.
type Run struct {
	ID          int64
	Name        string // optional unique name
	Kind        string // KindGenerate, KindEval, KindTrain or KindImport
	Config      string // full configuration as JSON; secrets are redacted on write
	Model       string
	ModelHash   string
	Adapter     string
	AdapterHash string
	Method      string
	Task        string
	Split       string
	Noise       float64
	Seed        int64
	// Asked is the number of questions the run was asked (0: unknown). EM and
	// F1 are means over them, so a missing, errored or unfinished question
	// counts as 0; without it the recorded episodes are the denominator.
	Asked      int
	Status     RunStatus
	CreatedAt  time.Time
	FinishedAt time.Time // zero while running
}

// Question is one question of a task split.
type Question struct {
	ID       int64
	Task     string
	Split    string
	Index    int    // position in the split's data file
	QID      string // the dataset's own id, if any
	Text     string
	Gold     string
	Metadata string // JSON object
}

// Episode is one run's attempt at one question.
type Episode struct {
	ID              int64
	RunID           int64
	QuestionID      int64
	Status          EpisodeStatus
	Method          string
	Prediction      string
	EM              float64
	F1              float64
	Reward          float64
	Turns           int
	PromptTokens    int
	GeneratedTokens int
	LatencySeconds  float64
	Cost            float64
	Error           string
	TextPrefix      string // trajectory text before the first step
	TextSuffix      string // trajectory text after the last step
	Numbered        bool   // "Thought 1:" labels
	Layout          string // chat message layout of an irregular imported row
	Source          string // file:line of an imported episode
	CreatedAt       time.Time
}

// Step is one thought/action/observation turn of an episode.
type Step struct {
	N               int // 0-based position in the episode
	Reflection      string
	Thought         string
	Action          string
	Argument        string
	Observation     string
	Raw             string // raw model text
	Verbatim        string // exact source text of an irregular imported step
	PromptTokens    int
	GeneratedTokens int
	LatencySeconds  float64
	Noise           string // noise applied to the observation, "" if none
}

// CacheEntry is one cached tool result.
type CacheEntry struct {
	Backend   string
	Query     string // normalised query
	Result    string
	CreatedAt time.Time
	Hits      int
	LastHitAt time.Time
}

// CorpusDoc is one document of an offline search corpus.
type CorpusDoc struct {
	ID     int64
	Corpus string
	Title  string
	Text   string
	Score  float64 // BM25 score from Search (higher is better); 0 otherwise
}

// Dataset is a training set: an ordered list of episodes and the recipe that
// chose them.
type Dataset struct {
	ID        int64
	Name      string
	Recipe    string // JSON
	CreatedAt time.Time
	Size      int // number of episodes (filled by reads)
}

// TrainingRun is one fine-tuning job.
type TrainingRun struct {
	ID            int64
	RunID         int64
	DatasetID     int64 // 0 when none
	Hyperparams   string
	OutputAdapter string
	Status        RunStatus
	CreatedAt     time.Time
	FinishedAt    time.Time
}

// LossPoint is one point of a training loss curve.
type LossPoint struct {
	Step           int
	Loss           float64
	LR             float64
	Tokens         int
	ElapsedSeconds float64
}

// PolicyStep is one step of a policy-gradient (GRPO) training run: the
// figures of its batch at the policy the step started from.
type PolicyStep struct {
	Step     int
	Rollouts int // rollouts in the batch
	Tokens   int // scored tokens: the model's own, prompts and observations masked
	// Reward is the batch's mean reward; Surrogate the mean clipped surrogate
	// per token; Clipped the fraction of tokens whose term was clipped.
	Reward    float64
	Surrogate float64
	Clipped   float64
	// KL is the mean k3 estimate of the KL to the reference per token; HasKL
	// is false when the run had no reference (no KL penalty).
	KL    float64
	HasKL bool
	// Objective is Surrogate − β·KL; the step's loss is its negative.
	Objective float64
}
