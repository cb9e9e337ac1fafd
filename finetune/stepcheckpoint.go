package finetune

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// StepCheckpoint keeps a training loop's progress in a directory between
// optimizer steps, in the files Run's checkpoints use (a progress file,
// replaced atomically, naming step-numbered trainer state and adapter files
// with their sha256), for loops that Run does not drive: improve's GRPO
// phase. Restored into a trainer made as the first one was, it continues
// with the same weights, AdamW moments and step counter, so a loop that
// replays the same batches writes the adapter an uninterrupted one writes.
type StepCheckpoint struct {
	dir string
	ck  *checkpoint
}

// OpenStepCheckpoint reads the checkpoint in dir, or starts one at step 0
// when there is none (nothing is written until Begin or Save). Fingerprint
// names everything that decides the loop's result: a checkpoint recorded
// under another one is refused rather than continued.
func OpenStepCheckpoint(dir, fingerprint string) (*StepCheckpoint, error) {
	ck, err := readCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	if ck == nil {
		ck = &checkpoint{Fingerprint: fingerprint}
	} else if ck.Fingerprint != fingerprint {
		return nil, fmt.Errorf("finetune: %s holds a checkpoint of another training (fingerprint %s, this one %s): the same output is written by a different job or configuration; remove it or choose another output",
			dir, ck.Fingerprint, fingerprint)
	}
	return &StepCheckpoint{dir: dir, ck: ck}, nil
}

// Step is the number of optimizer steps the checkpoint holds (0: none).
func (c *StepCheckpoint) Step() int { return c.ck.Step }

// Loss is the loss recorded with the last step.
func (c *StepCheckpoint) Loss() float64 { return c.ck.Loss }

// Elapsed is the training time recorded with the last step, in seconds.
func (c *StepCheckpoint) Elapsed() float64 { return c.ck.Elapsed }

// Done says whether Finish was called: the output is written.
func (c *StepCheckpoint) Done() bool { return c.ck.Done }

// Records are the run and training run the checkpoint's steps were recorded
// under (0, 0: none yet).
func (c *StepCheckpoint) Records() (runID, trainingRunID int64) { return c.ck.RunID, c.ck.TrainingRun }

// Begin records the run and training run the loop logs to and writes the
// checkpoint at step 0, so that a kill before the first step resumes into
// the same records instead of new ones.
func (c *StepCheckpoint) Begin(runID, trainingRunID int64) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	c.ck.RunID, c.ck.TrainingRun = runID, trainingRunID
	return writeCheckpoint(c.dir, c.ck)
}

// Restore loads the checkpoint's trainer state into tr (a trainer made with
// the options of the one that saved it), after checking that the files are
// the ones it wrote. A checkpoint at step 0 restores nothing.
func (c *StepCheckpoint) Restore(tr *llama.Trainer) error {
	if c.ck.State == "" {
		return nil
	}
	return restoreState(c.dir, c.ck, tr)
}

// Save checkpoints tr after step (its loss and the elapsed seconds kept with
// it): the state and adapter under step-numbered names, then the progress
// file naming them, then older files dropped.
func (c *StepCheckpoint) Save(tr *llama.Trainer, step int, loss, elapsed float64) error {
	c.ck.Step, c.ck.Loss, c.ck.Elapsed = step, loss, elapsed
	return saveState(c.dir, c.ck, tr)
}

// Finish writes tr's adapter after its last step (with that step's loss) to
// out atomically, records its sha256 and marks the checkpoint done, dropping
// the state files (several times the adapter's size).
func (c *StepCheckpoint) Finish(tr *llama.Trainer, out string, step int, loss float64) error {
	if err := saveAtomic(out, tr.Save); err != nil {
		return err
	}
	c.ck.Step, c.ck.Loss = step, loss
	c.ck.Done, c.ck.State, c.ck.Adapter, c.ck.Best = true, "", "", ""
	if err := c.ck.record(outSum, out); err != nil {
		return err
	}
	return writeCheckpoint(c.dir, c.ck)
}

// VerifyOutput checks that a finished checkpoint's output out is still the
// file Finish wrote.
func (c *StepCheckpoint) VerifyOutput(out string) error {
	if !c.ck.Done {
		return fmt.Errorf("finetune: %s: the training is not finished", c.dir)
	}
	h, err := store.FileHash(out)
	if err != nil {
		return fmt.Errorf("finetune: the training finished before but its output is unreadable: %w", err)
	}
	if want := c.ck.Sums[outSum]; want != h {
		return fmt.Errorf("finetune: the training finished before, but %s is not the file it wrote (sha256 %s, recorded %s): restore it or remove %s to train again",
			out, shortSum(h), shortSum(want), c.dir)
	}
	return nil
}

// saveState saves tr's state and adapter under ck.Step's names, records their
// sums and commits the progress file naming them (Run's checkpoints and
// StepCheckpoint's alike).
func saveState(dir string, ck *checkpoint, tr *llama.Trainer) error {
	state := fmt.Sprintf("state-%d.gguf", ck.Step)
	adapter := fmt.Sprintf("adapter-%d.gguf", ck.Step)
	if err := saveAtomic(filepath.Join(dir, state), tr.SaveState); err != nil {
		return err
	}
	if err := saveAtomic(filepath.Join(dir, adapter), tr.Save); err != nil {
		return err
	}
	ck.State, ck.Adapter = state, adapter
	for _, name := range []string{state, adapter} {
		if err := ck.record(name, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return writeCheckpoint(dir, ck)
}

// restoreState checks the files ck names against their sums and loads its
// state into tr, which must then be at ck's step.
func restoreState(dir string, ck *checkpoint, tr *llama.Trainer) error {
	for _, name := range []string{ck.State, ck.Adapter, ck.Best} {
		if name != "" {
			if err := ck.verify(name, filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	if err := tr.LoadState(filepath.Join(dir, ck.State)); err != nil {
		return fmt.Errorf("finetune: resume from %s: %w", dir, err)
	}
	if int(tr.Steps()) != ck.Step {
		return fmt.Errorf("finetune: %s: state at step %d, progress says %d", dir, tr.Steps(), ck.Step)
	}
	return nil
}
