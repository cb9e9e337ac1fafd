package finetune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// Run trains as c says, recording the run, its dataset and its loss curve in s.
//
// It checkpoints every c.SaveEvery steps into CheckpointDir(c.Out): the adapter,
// the trainer's state (weights, AdamW moments, step counter) and a small JSON of
// where the data stands. Run with the same configuration after a crash or kill, it
// resumes from the last checkpoint and finishes with the same number of steps on
// the same data order; run again after it finished, it reports the finished job.
// Cancelling ctx stops after the current step with a checkpoint saved, the run
// marked interrupted, and an error wrapping ctx.Err().
func Run(ctx context.Context, s *store.Store, c Config) (Result, error) {
	if err := c.defaults(); err != nil {
		return Result{}, err
	}
	// Full training changes the weights in memory, which a mapped file forbids;
	// a LoRA run maps the base read-only, so the file cannot change. The model is
	// loaded before the settings are fingerprinted: its context caps the cutoff.
	m, err := llama.LoadModel(c.Base, llama.ModelOptions{NoMmap: c.Full})
	if err != nil {
		return Result{}, fmt.Errorf("finetune: %w", err)
	}
	defer m.Close()
	c.fit(m.Info().NCtxTrain)
	dir := CheckpointDir(c.Out)
	ck, err := readCheckpoint(dir)
	if err != nil {
		return Result{}, err
	}
	hp := c.hyperparams()
	fp, hpJSON := fingerprint(hp)
	if ck != nil && ck.Fingerprint != fp {
		return Result{}, fmt.Errorf("finetune: %s holds a checkpoint of a different job (settings changed); remove it or choose another output", dir)
	}
	if ck != nil && ck.Done {
		res := Result{Out: c.Out, Steps: ck.Step, Loss: ck.Loss, ValLoss: ck.ValLoss, Tokens: ck.Tokens,
			Elapsed: time.Duration(ck.Elapsed * float64(time.Second)), RunID: ck.RunID, TrainingRunID: ck.TrainingRun,
			DatasetID: ck.DatasetID, AlreadyDone: true, BestStep: ck.BestStep, BestValLoss: ck.BestValLoss}
		res.OutHash, err = store.FileHash(c.Out)
		if err != nil {
			return res, fmt.Errorf("finetune: the job finished before but its output is unreadable: %w", err)
		}
		if want, ok := ck.Sums[outSum]; ok && want != res.OutHash {
			return res, fmt.Errorf("finetune: the job finished before, but %s is not the file it wrote (sha256 %s, recorded %s): restore it or remove %s to train again",
				c.Out, shortSum(res.OutHash), shortSum(want), dir)
		}
		return res, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, fmt.Errorf("finetune: %w", err)
	}
	d, err := prepare(ctx, s, m, &c, ck)
	if err != nil {
		return Result{}, err
	}
	pl := newPlan(d, &c)
	total := pl.total
	warmup := WarmupSteps(max(c.Warmup, 0), total)
	ckpt, err := c.checkMemory(d)
	if err != nil {
		return Result{}, err
	}

	// The base's hash identifies it in the run record and in the adapter, whose
	// users are warned when they attach it to another base.
	baseHash, err := store.FileHash(c.Base)
	if err != nil {
		return Result{}, fmt.Errorf("finetune: %w", err)
	}
	to := llama.TrainerOptions{
		Rank: c.Rank, Alpha: c.Alpha, Targets: c.Targets, Full: c.Full, Optimizer: c.Optimizer,
		WeightDecay: c.WeightDecay, Seed: uint32(c.Seed), LoRADropout: c.dropout(), Threads: c.Threads, F32Base: c.F32Base, F32Head: c.F32Head,
		ResumeAdapter: c.InitAdapter, Backward: c.Backward, GradientCheckpointing: ckpt.on,
		CheckpointKeep: ckpt.keep,
		ServeContext:   c.ServeContext,
	}
	if !c.Full {
		to.AdapterMetadata = c.adapterMetadata(m, baseHash)
	}
	tr, err := llama.NewTrainer(m, to)
	if err != nil {
		return Result{}, fmt.Errorf("finetune: %w", err)
	}
	defer tr.Close()

	res := Result{Out: c.Out, Examples: len(d.train), ValExamples: len(d.val), Truncated: d.truncated,
		Skipped: d.skipped, PieceWise: d.pieceWise, DatasetID: d.datasetID, Cutoff: c.Cutoff}
	if ck != nil && ck.State != "" {
		if err := restoreState(dir, ck, tr); err != nil {
			return res, err
		}
		res.Resumed = ck.Step
	}
	if ck == nil || ck.TrainingRun == 0 {
		ck = &checkpoint{Fingerprint: fp, Seed: c.Seed, Total: total, DatasetID: d.datasetID, DB: s.Path()}
		if err := createTrainingRun(ctx, s, &c, ck, string(hpJSON), baseHash); err != nil {
			return res, err
		}
		// Recorded before the first step so that a kill before the first
		// checkpoint resumes into the same training run instead of a new one.
		if err := writeCheckpoint(dir, ck); err != nil {
			return res, err
		}
	} else if err := s.SetRunStatus(ctx, ck.RunID, store.StatusRunning); err != nil {
		return res, fmt.Errorf("finetune: %w", err)
	}
	res.RunID, res.TrainingRunID = ck.RunID, ck.TrainingRun

	lp := &loop{c: &c, s: s, tr: tr, d: d, plan: pl, ck: ck, dir: dir, total: total, warmup: warmup, res: &res,
		prior: time.Duration(ck.Elapsed * float64(time.Second)), start: time.Now()}
	err = lp.run(ctx)
	if err != nil {
		status := store.StatusFailed
		if ctx.Err() != nil {
			status = store.StatusInterrupted
		}
		// The store calls must outlive the cancelled context.
		bg := context.WithoutCancel(ctx)
		s.FinishTrainingRun(bg, ck.TrainingRun, status, "")
		s.SetRunStatus(bg, ck.RunID, status)
		return res, err
	}
	return res, nil
}

// createTrainingRun records the run (kind train) and its training run; hash is
// the base file's sha256.
func createTrainingRun(ctx context.Context, s *store.Store, c *Config, ck *checkpoint, hp, hash string) error {
	out, _ := filepath.Abs(c.Out)
	base, _ := filepath.Abs(c.Base)
	run := store.Run{Kind: store.KindTrain, Config: hp, Model: base, ModelHash: hash, Adapter: out,
		Seed: int64(c.Seed), Status: store.StatusRunning}
	if _, err := s.CreateRun(ctx, &run); err != nil {
		return fmt.Errorf("finetune: record run: %w", err)
	}
	trun := store.TrainingRun{RunID: run.ID, DatasetID: ck.DatasetID, Hyperparams: hp, Status: store.StatusRunning}
	if _, err := s.CreateTrainingRun(ctx, &trun); err != nil {
		return fmt.Errorf("finetune: record training run: %w", err)
	}
	ck.RunID, ck.TrainingRun = run.ID, trun.ID
	return nil
}

// loop is the state of one training process.
type loop struct {
	c      *Config
	s      *store.Store
	tr     *llama.Trainer
	d      *data
	plan   plan
	ck     *checkpoint
	dir    string
	total  int
	warmup int
	res    *Result

	prior     time.Duration // elapsed before this process
	start     time.Time
	tokens    int64 // tokens of this process's steps
	points    []store.LossPoint
	lastPrint time.Time
	saved     int       // step of the last checkpoint
	epochS    [][][]int // the steps of epoch epochN
	epochN    int
}

func (l *loop) elapsed() time.Duration { return l.prior + time.Since(l.start) }

func (l *loop) run(ctx context.Context) error {
	ck := l.ck
	l.saved = ck.Step
	l.epochN = -1
	for ck.Step < l.total {
		if err := ctx.Err(); err != nil {
			if serr := l.checkpoint(ctx); serr != nil {
				return errors.Join(serr, err)
			}
			return fmt.Errorf("finetune: interrupted at step %d of %d (checkpoint saved; run the same command to resume): %w", ck.Step, l.total, err)
		}
		epoch, si := l.plan.locate(ck.Step)
		if epoch != l.epochN {
			l.epochS, l.epochN = l.d.epochSteps(l.c, epoch), epoch
		}
		step := l.epochS[si]
		micro := make([]llama.TrainBatch, len(step))
		ntok := 0
		for i, idx := range step {
			micro[i] = Batch(l.d.examples, idx)
			ntok += len(micro[i].Tokens)
		}
		lr := LR(l.c.Schedule, l.c.LR, ck.Step, l.total, l.warmup)
		r, err := l.tr.StepAccumulate(micro, float32(lr))
		if err != nil {
			return fmt.Errorf("finetune: step %d (%s): %w", ck.Step+1, l.d.examples[step[0][0]].Source, err)
		}
		ck.Step++
		ck.Epoch, ck.Batch = l.plan.locate(ck.Step)
		ck.Tokens += int64(ntok)
		l.tokens += int64(ntok)
		ck.Loss = r.Loss
		ck.Elapsed = l.elapsed().Seconds()
		l.points = append(l.points, store.LossPoint{Step: ck.Step, Loss: r.Loss, LR: lr, Tokens: int(ck.Tokens), ElapsedSeconds: ck.Elapsed})

		last := ck.Step == l.total
		if len(l.d.val) > 0 && (last || (l.c.EvalEvery > 0 && ck.Step%l.c.EvalEvery == 0)) {
			if ck.ValLoss, err = l.validate(); err != nil {
				return err
			}
			if err := l.keepBest(); err != nil {
				return err
			}
		}
		if len(l.points) >= 20 {
			if err := l.flush(ctx); err != nil {
				return err
			}
		}
		if !last && l.c.SaveEvery > 0 && ck.Step%l.c.SaveEvery == 0 {
			if err := l.checkpoint(ctx); err != nil {
				return err
			}
		}
		l.progress(last)
	}
	return l.finish(ctx)
}

// validate returns the mean loss over every scored validation token.
func (l *loop) validate() (float64, error) {
	var sum float64
	n := 0
	for _, idx := range Pack(l.d.lengths, l.d.val, l.c.MaxTokens) {
		r, err := l.tr.Eval(Batch(l.d.examples, idx))
		if err != nil {
			return 0, fmt.Errorf("finetune: validation (%s): %w", l.d.examples[idx[0]].Source, err)
		}
		sum += r.Loss * float64(r.Scored)
		n += r.Scored
	}
	if n == 0 {
		return 0, nil
	}
	return sum / float64(n), nil
}

// keepBest saves the adapter when the validation loss just computed is the lowest
// so far (with KeepBest). The progress file names it at the next checkpoint; a
// kill before that resumes from an earlier step and, the run being
// deterministic, saves it again.
func (l *loop) keepBest() error {
	ck := l.ck
	if !l.c.KeepBest || (ck.Best != "" && ck.ValLoss >= ck.BestValLoss) {
		return nil
	}
	name := fmt.Sprintf("best-%d.gguf", ck.Step)
	if err := saveAtomic(filepath.Join(l.dir, name), l.tr.Save); err != nil {
		return err
	}
	ck.Best, ck.BestStep, ck.BestValLoss = name, ck.Step, ck.ValLoss
	return ck.record(name, filepath.Join(l.dir, name))
}

// flush appends the buffered loss points to the store. A resumed run re-logs the
// steps after its checkpoint, and the store replaces those points, so the curve
// never has a step twice.
func (l *loop) flush(ctx context.Context) error {
	if len(l.points) == 0 {
		return nil
	}
	if err := l.s.AddLossPoints(context.WithoutCancel(ctx), l.ck.TrainingRun, l.points); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	l.points = l.points[:0]
	return nil
}

// checkpoint saves the adapter and trainer state under step-numbered names, then
// the progress file naming them (the commit point), then drops older files.
func (l *loop) checkpoint(ctx context.Context) error {
	if err := l.flush(ctx); err != nil {
		return err
	}
	if l.ck.Step == l.saved && l.ck.State != "" {
		return nil
	}
	if l.ck.Step == 0 {
		return nil
	}
	if err := saveState(l.dir, l.ck, l.tr); err != nil {
		return err
	}
	l.saved = l.ck.Step
	return nil
}

// finish writes the output, records it and marks the checkpoint done (dropping
// the state files, which are several times the adapter's size).
func (l *loop) finish(ctx context.Context) error {
	if err := l.flush(ctx); err != nil {
		return err
	}
	save := l.tr.Save
	if l.c.KeepBest && l.ck.Best != "" {
		best := filepath.Join(l.dir, l.ck.Best)
		save = func(path string) error { return copyFile(best, path) }
	}
	if err := saveAtomic(l.c.Out, save); err != nil {
		return err
	}
	hash, err := store.FileHash(l.c.Out)
	if err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	out, _ := filepath.Abs(l.c.Out)
	if err := l.s.FinishTrainingRun(ctx, l.ck.TrainingRun, store.StatusDone, out); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	if err := l.s.SetRunStatus(ctx, l.ck.RunID, store.StatusDone); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	l.ck.Done, l.ck.State, l.ck.Adapter, l.ck.Best = true, "", "", ""
	if l.ck.Sums == nil {
		l.ck.Sums = map[string]string{}
	}
	l.ck.Sums[outSum] = hash
	if err := writeCheckpoint(l.dir, l.ck); err != nil {
		return err
	}
	r := l.res
	r.OutHash, r.Steps, r.Loss, r.ValLoss, r.Tokens = hash, l.ck.Step, l.ck.Loss, l.ck.ValLoss, l.ck.Tokens
	r.BestStep, r.BestValLoss = l.ck.BestStep, l.ck.BestValLoss
	r.Elapsed = l.elapsed()
	if sec := time.Since(l.start).Seconds(); sec > 0 {
		r.TokensPerSec = float64(l.tokens) / sec
	}
	if n := len(l.plan.perEpoch); n > 0 {
		r.Epochs = float64(l.ck.Epoch)
		if l.ck.Epoch < n && l.plan.perEpoch[l.ck.Epoch] > 0 {
			r.Epochs += float64(l.ck.Batch) / float64(l.plan.perEpoch[l.ck.Epoch])
		}
	}
	return nil
}

// progress prints a line at most every second (and the last one).
func (l *loop) progress(last bool) {
	if l.c.Progress == nil || (!last && time.Since(l.lastPrint) < time.Second) {
		return
	}
	l.lastPrint = time.Now()
	run := time.Since(l.start).Seconds()
	tps := float64(l.tokens) / max(run, 1e-9)
	done := l.ck.Step - l.res.Resumed
	eta := time.Duration(0)
	if done > 0 {
		eta = time.Duration(run / float64(done) * float64(l.total-l.ck.Step) * float64(time.Second)).Round(time.Second)
	}
	val := ""
	if l.ck.ValLoss > 0 {
		val = fmt.Sprintf(" val %.4f", l.ck.ValLoss)
	}
	epoch, _ := l.plan.locate(l.ck.Step - 1)
	fmt.Fprintf(l.c.Progress, "step %d/%d epoch %d/%d loss %.4f%s lr %.2e %.0f tok/s ETA %s\n",
		l.ck.Step, l.total, epoch+1, len(l.plan.perEpoch), l.ck.Loss, val,
		LR(l.c.Schedule, l.c.LR, l.ck.Step-1, l.total, l.warmup), tps, eta)
}
