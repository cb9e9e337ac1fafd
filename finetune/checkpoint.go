package finetune

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fireact/fireact/atomicfile"
	"github.com/fireact/fireact/store"
)

// checkpoint is the small JSON beside the trainer state: where training stands.
// Data order needs no generator state: epoch e's order is drawn from (seed, e)
// alone, and the dataset is fixed in the store, so the step number locates the
// next batch.
type checkpoint struct {
	Version     int     `json:"version"`
	Fingerprint string  `json:"fingerprint"` // of the settings that decide the run
	Step        int     `json:"step"`        // optimizer steps done
	Total       int     `json:"total"`
	Epoch       int     `json:"epoch"` // epoch of the next step (0-based)
	Batch       int     `json:"batch"` // batch of that epoch
	Seed        uint64  `json:"seed"`
	State       string  `json:"state,omitempty"`   // trainer state file in the directory; "" before step 1
	Adapter     string  `json:"adapter,omitempty"` // latest adapter (or model) in the directory
	RunID       int64   `json:"run_id"`
	TrainingRun int64   `json:"training_run_id"`
	DatasetID   int64   `json:"dataset_id,omitempty"`
	DB          string  `json:"db"`
	Tokens      int64   `json:"tokens"`
	Elapsed     float64 `json:"elapsed_s"`
	Loss        float64 `json:"loss"`
	ValLoss     float64 `json:"val_loss,omitempty"`
	Best        string  `json:"best,omitempty"` // adapter of the lowest validation loss (KeepBest)
	BestStep    int     `json:"best_step,omitempty"`
	BestValLoss float64 `json:"best_val_loss,omitempty"`
	Done        bool    `json:"done,omitempty"`
	// Sums are the SHA-256 of the files named above (and of the output, key
	// "out", once done), so that a file cut short by a crash or changed since
	// is refused on resume instead of taken for a good one.
	Sums map[string]string `json:"sums,omitempty"`
}

// outSum is the Sums key of the finished output.
const outSum = "out"

// record hashes path and keeps its sum under key.
func (c *checkpoint) record(key, path string) error {
	sum, err := store.FileHash(path)
	if err != nil {
		return fmt.Errorf("finetune: checkpoint: %w", err)
	}
	if c.Sums == nil {
		c.Sums = map[string]string{}
	}
	c.Sums[key] = sum
	return nil
}

// verify checks that path still has the sum recorded under key. A checkpoint
// written before sums were kept has none and passes.
func (c *checkpoint) verify(key, path string) error {
	want, ok := c.Sums[key]
	if !ok {
		return nil
	}
	got, err := store.FileHash(path)
	if err != nil {
		return fmt.Errorf("finetune: checkpoint names %s: %w", path, err)
	}
	if got != want {
		return fmt.Errorf("finetune: %s does not match its checkpoint (sha256 %s, recorded %s): cut short or changed since it was written; remove %s to start over",
			path, shortSum(got), shortSum(want), filepath.Dir(path))
	}
	return nil
}

// shortSum is the start of a hex sum, enough to tell two apart in a message.
func shortSum(s string) string { return s[:min(len(s), 12)] }

// prune drops the sums of files the checkpoint no longer names.
func (c *checkpoint) prune() {
	for k := range c.Sums {
		if k != c.State && k != c.Adapter && k != c.Best && k != outSum {
			delete(c.Sums, k)
		}
	}
}

const (
	checkpointVersion = 1
	progressFile      = "progress.json"
)

// CheckpointDir is where training to out keeps its checkpoints: out + ".ckpt".
func CheckpointDir(out string) string { return out + ".ckpt" }

// readCheckpoint returns the checkpoint in dir, or nil when there is none.
func readCheckpoint(dir string) (*checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(dir, progressFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finetune: read checkpoint: %w", err)
	}
	var c checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("finetune: %s: %w", filepath.Join(dir, progressFile), err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("finetune: %s: checkpoint version %d, want %d", filepath.Join(dir, progressFile), c.Version, checkpointVersion)
	}
	return &c, nil
}

// writeCheckpoint replaces the progress file atomically (write, sync, rename), so
// a kill leaves either the old checkpoint or the new one, never half of one; then
// it removes state files the new checkpoint no longer names.
func writeCheckpoint(dir string, c *checkpoint) error {
	c.Version = checkpointVersion
	c.prune()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("finetune: checkpoint: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, progressFile), b); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("finetune: checkpoint: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		stale := strings.HasPrefix(n, "state-") || strings.HasPrefix(n, "adapter-") || strings.HasPrefix(n, "best-")
		if stale && n != c.State && n != c.Adapter && n != c.Best {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	return nil
}

// saveAtomic writes a file with save (a trainer's Save or SaveState, which
// sync what they write) under a temporary name, renames it into place and
// syncs the directory.
func saveAtomic(path string, save func(string) error) error {
	tmp := path + ".tmp"
	if err := save(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("finetune: save %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("finetune: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// copyFile copies src to dst (a saveAtomic writer for the kept best adapter).
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, b)
}

func itoa(i int) string { return strconv.Itoa(i) }
