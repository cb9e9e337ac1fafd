package finetune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fireact/fireact/finetune/dataformat"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// Defaults of RecipeAgent, this project's recipe. FireAct's own run is
// RecipeFireAct (see fireActRecipe for where each of its values comes from).
const (
	// DefaultRank is FireAct's LoRA rank; alpha defaults to 2·rank (FireAct's 16).
	DefaultRank = 8
	// DefaultLR is FireAct's (and alpaca-lora's) learning rate.
	DefaultLR = 3e-4
	// DefaultCutoff is twice FireAct's 512: truncation cuts off the end of a
	// trajectory, the finish action the agent most needs to learn, and the small
	// models this project targets have vocabularies that spend more tokens on
	// the same text than Llama-2's. Truncated examples are counted and reported.
	DefaultCutoff = 1024
	// DefaultMaxTokens is the size of a packed micro-batch; with BatchExamples 0
	// a step is one such batch, and a step the size of the cutoff keeps peak
	// memory that of one full-length example.
	DefaultMaxTokens = 1024
	// DefaultEpochs follows alpaca-lora's default.
	DefaultEpochs = 3
	// DefaultVal is the validation fraction: FireAct's 1% leaves only a handful
	// of examples of a 500-row set, too few for a stable curve.
	DefaultVal = 0.05
	// DefaultWarmup is the warm-up fraction of all steps.
	DefaultWarmup = 0.03
	// DefaultEvalEvery and DefaultSaveEvery are in optimizer steps.
	DefaultEvalEvery = 50
	DefaultSaveEvery = 50
)

// Config is one training job. Exactly one data source is set: Runs and/or
// Dataset (episodes from the store), DataFile (a FireAct alpaca/gpt/sharegpt file,
// imported into the store first) or TextFile (plain text, every token scored).
type Config struct {
	// Recipe supplies every setting below left zero (default RecipeAgent).
	Recipe TrainingRecipe

	// Base is the GGUF model to train; it is never written.
	Base string
	// Out is the adapter (or, with Full, the model) written at the end. Checkpoints
	// go to CheckpointDir(Out); running the same job again resumes from them.
	Out string

	Runs     []string // runs (names or ids) whose episodes to train on
	Dataset  string   // a store dataset (name or id)
	DataFile string   // a FireAct fine-tuning file
	TextFile string   // plain text for language modelling

	// MinReward keeps episodes with at least this reward; nil keeps all finished
	// ones. Mix and TaskMix are mixing ratios per method and task (see Selection).
	MinReward   *float64
	Mix         map[string]float64
	TaskMix     map[string]float64
	DatasetName string // name of a dataset built from a selection

	Template      Template
	ChatTemplate  string // chat template override (text or llama.cpp built-in name)
	TrainOnInputs bool

	Cutoff    int // tokens per example (default: the recipe's, at most the model's context)
	MaxTokens int // tokens per packed micro-batch (default: the recipe's, at least Cutoff)
	// BatchExamples is the number of examples per optimizer step, packed into
	// micro-batches of MaxTokens whose gradients are accumulated (FireAct: 128);
	// 0: a step is one packed micro-batch.
	BatchExamples int
	// KeepBest writes the adapter of the validation with the lowest loss (the
	// final one included) instead of the last one.
	KeepBest  bool
	Val       float64 // validation fraction (< 1) or count (default: the recipe's; < 0: none)
	EvalEvery int     // steps between validations (default DefaultEvalEvery; < 0: only at the end)
	SaveEvery int     // steps between checkpoints (default DefaultSaveEvery; < 0: only on stop)

	Epochs   int // passes over the training examples (default DefaultEpochs when MaxSteps is 0)
	MaxSteps int // stop after this many steps (0: Epochs decides)

	LR       float64  // peak learning rate (default DefaultLR)
	Warmup   float64  // warm-up: fraction of the steps (< 1) or steps (default: the recipe's; < 0: none)
	Schedule Schedule // decay after warm-up (default linear)

	Rank  int
	Alpha float32
	// InitAdapter starts LoRA training from this adapter's A and B (a LoRA GGUF
	// of the same base, rank, alpha and targets: a previous fine-tune, or the
	// last round of `fireact improve`) instead of fresh ones; the optimizer
	// starts fresh. Rank and Alpha left zero are read from it. A resumed job
	// continues from its checkpoint, whose weights already include it.
	InitAdapter string
	LoRADropout float64 // dropout on the adapters' input while training (< 0: none)
	Targets     llama.Target
	Full        bool // train every weight of a small F32 model and write the whole model
	F32Head     bool
	F32Base     bool
	Optimizer   llama.Optimizer // "" is AdamW
	WeightDecay float32
	Threads     int
	Seed        uint64
	// Backward is how gradients pass through the frozen weights ("" is
	// llama.BackwardTransient, the least memory; see llama.Backward).
	Backward llama.Backward
	// GradientCheckpointing is when steps recompute each block's activations
	// instead of keeping them ("" is CheckpointingAuto: only when memory
	// requires it). It changes memory and time, never the result.
	GradientCheckpointing Checkpointing
	// ServeContext is the context per sequence the adapter will be served
	// at (llama.TrainerOptions.ServeContext; 0: 256). LongRoPE models
	// (Phi-3.5/4-mini) train on the RoPE table llama.cpp picks for it.
	ServeContext int

	// Before the first step the trainer's peak memory is estimated
	// (EstimateMemory) and training refused, naming settings that would fit,
	// when it exceeds MemoryAvailable bytes (0: what the machine has now,
	// see the function MemoryAvailable). IgnoreMemoryCheck skips the check.
	MemoryAvailable   int64
	IgnoreMemoryCheck bool

	// Progress receives a progress line every second or so (nil: none).
	Progress io.Writer
}

// Result is what a training job did.
type Result struct {
	Out           string
	OutHash       string // sha256 of Out
	Steps         int    // optimizer steps of the whole job (resumed ones included)
	Epochs        float64
	Resumed       int // the step this process resumed from (0: fresh start)
	Loss          float64
	ValLoss       float64 // last validation loss (NaN-free; 0 when no validation)
	BestStep      int     // with KeepBest: the step whose adapter was written
	BestValLoss   float64 // and its validation loss
	Tokens        int64   // tokens trained on by the whole job
	TokensPerSec  float64 // of this process
	Elapsed       time.Duration
	Examples      int // training examples
	Cutoff        int // tokens per example after capping at the model's context
	ValExamples   int
	Truncated     int // examples cut to the cutoff
	Skipped       int // examples with nothing to score (dropped)
	PieceWise     int // examples tokenized segment by segment
	RunID         int64
	TrainingRunID int64
	DatasetID     int64
	AlreadyDone   bool // the job had finished before; nothing was trained
}

func (c *Config) defaults() error {
	n := 0
	if len(c.Runs) > 0 || c.Dataset != "" {
		n++
	}
	if c.DataFile != "" {
		n++
	}
	if c.TextFile != "" {
		n++
	}
	if n != 1 {
		return errors.New("finetune: give exactly one data source: runs and/or a dataset, a data file or a text file")
	}
	if c.Base == "" || c.Out == "" {
		return errors.New("finetune: base model and output path are required")
	}
	if err := c.fromInitAdapter(); err != nil {
		return err
	}
	var err error
	if c.Recipe, err = ParseRecipe(string(c.Recipe)); err != nil {
		return err
	}
	if c.Template, err = ParseTemplate(string(c.Template)); err != nil {
		return err
	}
	r := c.Recipe.values()
	if c.Schedule == "" {
		c.Schedule = r.Schedule
	}
	if c.Schedule, err = ParseSchedule(string(c.Schedule)); err != nil {
		return err
	}
	setInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setFloat := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	setInt(&c.Cutoff, r.Cutoff)
	setInt(&c.MaxTokens, r.MaxTokens)
	setInt(&c.BatchExamples, r.BatchExamples)
	if c.EvalEvery == 0 {
		c.EvalEvery = r.EvalEvery
	}
	if c.SaveEvery == 0 {
		c.SaveEvery = r.SaveEvery
	}
	if c.Epochs <= 0 && c.MaxSteps <= 0 {
		c.Epochs = r.Epochs
	}
	if c.LR <= 0 {
		c.LR = r.LR
	}
	setFloat(&c.Val, r.Val)
	setFloat(&c.Warmup, r.Warmup)
	setFloat(&c.LoRADropout, r.LoRADropout)
	if c.LoRADropout >= 1 {
		return fmt.Errorf("finetune: LoRA dropout %g is not below 1", c.LoRADropout)
	}
	setInt(&c.Rank, r.Rank)
	if c.Alpha <= 0 {
		// Both recipes use PEFT's alpha = 2·rank (FireAct's 16 for rank 8).
		c.Alpha = 2 * float32(c.Rank)
	}
	if c.Targets == 0 {
		c.Targets = recipeTargets(c.Base, r.Targets)
	}
	c.TrainOnInputs = c.TrainOnInputs || r.TrainOnInputs
	c.KeepBest = c.KeepBest || r.KeepBest
	if c.Full {
		// Full training has no adapter to drop out of.
		c.LoRADropout = -1
	}
	if c.Optimizer == "" {
		c.Optimizer = llama.OptimizerAdamW
	}
	// The default is kept as "" so that the recorded settings (and
	// checkpoint fingerprints) of jobs from before the option are unchanged.
	b, err := llama.ParseBackward(string(c.Backward))
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	c.Backward = b
	if b == llama.BackwardTransient {
		c.Backward = ""
	}
	return nil
}

// fromInitAdapter validates InitAdapter against the base (as llama.cpp's loader
// would) and takes the rank and alpha left zero from it: it runs before the
// recipe's defaults, which would otherwise pick a rank the adapter does not
// have. An explicit rank or alpha that differs is refused: training would
// rescale the adapter it was asked to continue.
func (c *Config) fromInitAdapter() error {
	if c.InitAdapter == "" {
		return nil
	}
	if c.Full {
		return errors.New("finetune: an init adapter applies to LoRA training, not full training")
	}
	info, err := llama.ReadAdapterInfo(c.Base, c.InitAdapter)
	if err != nil {
		return fmt.Errorf("finetune: init adapter: %w", err)
	}
	switch {
	case c.Rank <= 0:
		c.Rank = info.Rank
	case c.Rank != info.Rank:
		return fmt.Errorf("finetune: init adapter %s has rank %d, not the %d asked for", c.InitAdapter, info.Rank, c.Rank)
	}
	switch {
	case c.Alpha <= 0:
		c.Alpha = info.Alpha
	case info.Alpha != 0 && c.Alpha != info.Alpha:
		return fmt.Errorf("finetune: init adapter %s has alpha %g, not the %g asked for", c.InitAdapter, info.Alpha, c.Alpha)
	}
	return nil
}

// fit caps the cutoff at the model's training context (positions past it are
// untrained RoPE territory) and makes a micro-batch hold at least one example.
// It runs before the settings are fingerprinted and recorded, so the record is
// what training uses.
func (c *Config) fit(nctxTrain int) {
	if nctxTrain > 0 {
		c.Cutoff = min(c.Cutoff, nctxTrain)
	}
	c.MaxTokens = max(c.MaxTokens, c.Cutoff)
}

// dropout is the trainer's LoRA dropout probability.
func (c *Config) dropout() float32 { return float32(max(c.LoRADropout, 0)) }

// hyperparams is the JSON recorded with the training run; its hash is the
// checkpoint fingerprint, so a checkpoint is only resumed by the same job.
type hyperparams struct {
	Recipe        TrainingRecipe     `json:"recipe"`
	Base          string             `json:"base"`
	BaseSize      int64              `json:"base_size"`
	Out           string             `json:"out"`
	Runs          []string           `json:"runs,omitempty"`
	Dataset       string             `json:"dataset,omitempty"`
	DataFile      string             `json:"data_file,omitempty"`
	TextFile      string             `json:"text_file,omitempty"`
	MinReward     *float64           `json:"min_reward,omitempty"`
	Mix           map[string]float64 `json:"mix,omitempty"`
	TaskMix       map[string]float64 `json:"task_mix,omitempty"`
	Template      Template           `json:"template"`
	ChatTemplate  string             `json:"chat_template,omitempty"`
	TrainOnInputs bool               `json:"train_on_inputs"`
	Cutoff        int                `json:"cutoff"`
	MaxTokens     int                `json:"max_tokens"`
	BatchExamples int                `json:"batch_examples,omitempty"`
	EvalEvery     int                `json:"eval_every"` // decides the steps KeepBest can choose
	KeepBest      bool               `json:"keep_best,omitempty"`
	LoRADropout   float64            `json:"lora_dropout,omitempty"`
	Val           float64            `json:"val"`
	Epochs        int                `json:"epochs"`
	MaxSteps      int                `json:"max_steps"`
	LR            float64            `json:"lr"`
	Warmup        float64            `json:"warmup"`
	Schedule      Schedule           `json:"schedule"`
	Rank          int                `json:"rank,omitempty"`
	Alpha         float32            `json:"alpha,omitempty"`
	InitAdapter   string             `json:"init_adapter,omitempty"`
	InitHash      string             `json:"init_adapter_sha256,omitempty"` // the same path with other weights is another job
	Targets       uint32             `json:"targets,omitempty"`
	Full          bool               `json:"full"`
	F32Head       bool               `json:"f32_head"`
	F32Base       bool               `json:"f32_base"`
	Optimizer     llama.Optimizer    `json:"optimizer"`
	WeightDecay   float32            `json:"weight_decay"`
	Seed          uint64             `json:"seed"`
	// Backward is recorded when it is not the default, so that fingerprints
	// of jobs from before the flag existed are unchanged.
	Backward llama.Backward `json:"backward,omitempty"`
	// ServeContext likewise: on a LongRoPE model it picks the function trained.
	ServeContext int `json:"serve_ctx,omitempty"`
}

func (c *Config) hyperparams() hyperparams {
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	h := hyperparams{
		Recipe: c.Recipe, BatchExamples: c.BatchExamples, EvalEvery: c.EvalEvery, KeepBest: c.KeepBest, LoRADropout: max(c.LoRADropout, 0),
		Base: abs(c.Base), Out: abs(c.Out), Runs: c.Runs, Dataset: c.Dataset, DataFile: abs(c.DataFile), TextFile: abs(c.TextFile),
		MinReward: c.MinReward, Mix: c.Mix, TaskMix: c.TaskMix, Template: c.Template, ChatTemplate: c.ChatTemplate,
		TrainOnInputs: c.TrainOnInputs, Cutoff: c.Cutoff, MaxTokens: c.MaxTokens, Val: c.Val, Epochs: c.Epochs,
		MaxSteps: c.MaxSteps, LR: c.LR, Warmup: c.Warmup, Schedule: c.Schedule, Full: c.Full, F32Head: c.F32Head,
		F32Base: c.F32Base, Optimizer: c.Optimizer, WeightDecay: c.WeightDecay, Seed: c.Seed, ServeContext: c.ServeContext,
	}
	if fi, err := os.Stat(c.Base); err == nil {
		h.BaseSize = fi.Size()
	}
	if !c.Full {
		h.Rank, h.Alpha, h.Targets = c.Rank, c.Alpha, uint32(c.Targets)
		if c.InitAdapter != "" {
			h.InitAdapter = abs(c.InitAdapter)
			// Unreadable here means Run already failed on it; the hash is then moot.
			h.InitHash, _ = store.FileHash(c.InitAdapter)
		}
		if c.Backward != llama.BackwardTransient {
			h.Backward = c.Backward // "" is the default: not recorded
		}
	}
	if c.TextFile != "" {
		h.Template, h.TrainOnInputs = "", true
	}
	return h
}

func fingerprint(h hyperparams) (string, []byte) {
	b, _ := json.Marshal(h)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), b
}

// data is the prepared training data.
type data struct {
	examples    []Example
	train, val  []int
	datasetID   int64
	truncated   int
	skipped     int
	pieceWise   int
	lengths     []int
	trainTokens int
}

// prepare builds (or, on resume, reloads) the dataset and encodes it.
// It reads c (already fitted to the model) and never changes it.
func prepare(ctx context.Context, s *store.Store, m *llama.Model, c *Config, ck *checkpoint) (*data, error) {
	d := &data{}
	if c.TextFile != "" {
		text, err := os.ReadFile(c.TextFile)
		if err != nil {
			return nil, fmt.Errorf("finetune: %w", err)
		}
		if d.examples, err = TextBlocks(m, string(text), c.Cutoff); err != nil {
			return nil, fmt.Errorf("finetune: %s: %w", c.TextFile, err)
		}
		if len(d.examples) == 0 {
			return nil, fmt.Errorf("finetune: %s: no text to train on", c.TextFile)
		}
	} else {
		var ids []int64
		var err error
		if ck != nil && ck.DatasetID != 0 {
			// Resuming: the dataset chosen at the start is in the store; sampling
			// again could only differ (new episodes since).
			d.datasetID = ck.DatasetID
			ids, err = s.DatasetEpisodeIDs(ctx, d.datasetID)
		} else {
			d.datasetID, ids, err = chooseData(ctx, s, c)
		}
		if err != nil {
			return nil, err
		}
		eo := EncodeOptions{TrainOnInputs: c.TrainOnInputs, Cutoff: c.Cutoff, NoEOS: c.Template == TemplateChat}
		cache := map[int64]Example{}
		for _, id := range ids {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ex, ok := cache[id]
			if !ok {
				t, err := s.Trajectory(ctx, id)
				if err != nil {
					return nil, fmt.Errorf("finetune: episode %d: %w", id, err)
				}
				segs, err := Segments(t, c.Template, m, c.ChatTemplate)
				if err != nil {
					return nil, fmt.Errorf("finetune: episode %d: %w", id, err)
				}
				if ex, err = Encode(m, segs, eo); err != nil {
					return nil, fmt.Errorf("finetune: episode %d: %w", id, err)
				}
				ex.Source = fmt.Sprintf("episode %d", id)
				cache[id] = ex
			}
			if ex.Scored() == 0 {
				d.skipped++
				continue
			}
			if ex.Truncated {
				d.truncated++
			}
			if ex.PieceWise {
				d.pieceWise++
			}
			d.examples = append(d.examples, ex)
		}
		if len(d.examples) == 0 {
			return nil, errors.New("finetune: no example has anything to score")
		}
	}
	d.lengths = make([]int, len(d.examples))
	for i, ex := range d.examples {
		d.lengths[i] = len(ex.Tokens)
	}
	d.train, d.val = SplitValidation(len(d.examples), max(c.Val, 0), c.Seed)
	for _, i := range d.train {
		d.trainTokens += d.lengths[i]
	}
	return d, nil
}

// chooseData records the job's dataset: the named one as is, or one built by the
// selection (filters, mixing) and recorded with its recipe. A data file is
// imported first.
func chooseData(ctx context.Context, s *store.Store, c *Config) (int64, []int64, error) {
	sel := Selection{Runs: c.Runs, Dataset: c.Dataset, MinReward: c.MinReward, Methods: c.Mix, Tasks: c.TaskMix,
		Seed: c.Seed, Name: c.DatasetName}
	if c.DataFile != "" {
		rep, err := dataformat.ImportFile(ctx, s, c.DataFile, dataformat.ImportOptions{})
		if err != nil {
			return 0, nil, err
		}
		if len(rep.Errors) > 0 && c.Progress != nil {
			for _, e := range rep.Errors {
				fmt.Fprintln(c.Progress, "skipped bad row:", e.Error())
			}
		}
		sel.Dataset = fmt.Sprint(rep.DatasetID)
	}
	if len(sel.Runs) == 0 && sel.MinReward == nil && len(sel.Methods) == 0 && len(sel.Tasks) == 0 {
		d, err := LookupDataset(ctx, s, sel.Dataset)
		if err != nil {
			return 0, nil, err
		}
		ids, err := s.DatasetEpisodeIDs(ctx, d.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("finetune: dataset %d: %w", d.ID, err)
		}
		return d.ID, ids, nil
	}
	if sel.Name == "" {
		sel.Name = "finetune/" + filepath.Base(c.Out)
	}
	d, ids, _, err := BuildDataset(ctx, s, sel)
	if err != nil {
		return 0, nil, err
	}
	return d.ID, ids, nil
}

// epochSteps returns an epoch's optimizer steps, each a list of packed
// micro-batches of example indices: with BatchExamples, consecutive groups of that
// many examples of the epoch's order (the last one smaller), each packed by
// MaxTokens; without, every packed batch is a step of its own.
func (d *data) epochSteps(c *Config, epoch int) [][][]int {
	order := EpochOrder(d.train, c.Seed, epoch)
	var out [][][]int
	if c.BatchExamples <= 0 {
		for _, b := range Pack(d.lengths, order, c.MaxTokens) {
			out = append(out, [][]int{b})
		}
		return out
	}
	for i := 0; i < len(order); i += c.BatchExamples {
		out = append(out, Pack(d.lengths, order[i:min(i+c.BatchExamples, len(order))], c.MaxTokens))
	}
	return out
}

// plan is the job's step layout: steps per epoch and the total.
type plan struct {
	perEpoch []int
	total    int
}

// newPlan counts the job's steps: Epochs passes, cut at MaxSteps; with only
// MaxSteps, as many epochs as it takes.
func newPlan(d *data, c *Config) plan {
	var p plan
	for e := 0; ; e++ {
		if c.Epochs > 0 && e >= c.Epochs {
			break
		}
		if c.MaxSteps > 0 && p.total >= c.MaxSteps {
			break
		}
		n := len(d.epochSteps(c, e))
		p.perEpoch = append(p.perEpoch, n)
		p.total += n
	}
	if c.MaxSteps > 0 {
		p.total = min(p.total, c.MaxSteps)
	}
	return p
}

// locate returns the epoch and the step within it of step k.
func (p plan) locate(k int) (epoch, step int) {
	for e, n := range p.perEpoch {
		if k < n {
			return e, k
		}
		k -= n
	}
	return len(p.perEpoch), 0
}
