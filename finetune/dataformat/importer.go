package dataformat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// ErrNothingImported is returned by ImportFile for a file with no good row;
// nothing is written then.
var ErrNothingImported = errors.New("no row imported")

// ImportOptions adjust ImportFile.
type ImportOptions struct {
	// Format overrides the format detected from the file name.
	Format Format
	// Method, when set, overrides the classified method of every row (for
	// example "react" for a file known to hold only ReAct trajectories).
	Method string
	// Dataset names the created dataset; default "<format>/<file base name>",
	// with "#2", "#3", ... appended when taken.
	Dataset string
}

// Report says what an import did.
type Report struct {
	File      string
	Format    Format
	RunID     int64
	DatasetID int64
	Dataset   string
	Imported  int
	ByTask    map[string]int
	ByMethod  map[string]int
	Errors    []RowError // malformed rows, skipped
}

// String is a one-line summary: file, count, per task and per method counts.
func (r Report) String() string {
	return fmt.Sprintf("%s: %d imported (%s; %s), %d bad rows, dataset %d %q, run %d",
		r.File, r.Imported, counts(r.ByTask), counts(r.ByMethod), len(r.Errors), r.DatasetID, r.Dataset, r.RunID)
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// ImportFile imports a fine-tuning file into the store as an import run with
// one episode per good row, and a dataset of those episodes in file order.
// Questions are recorded under split "sft:<format>/<base name>" with the row
// number as index. Everything is written in one transaction: an error leaves
// nothing behind. Malformed rows are skipped and listed in Report.Errors; when
// no row is good, ImportFile writes nothing and returns ErrNothingImported with
// the report of the bad rows.
func ImportFile(ctx context.Context, s *store.Store, path string, opt ImportOptions) (Report, error) {
	f := opt.Format
	if f == "" {
		var err error
		if f, err = DetectFormat(path); err != nil {
			return Report{}, err
		}
	}
	rep := Report{File: path, Format: f, ByTask: map[string]int{}, ByMethod: map[string]int{}}
	examples, bad, err := ReadFile(path, f)
	if err != nil {
		return rep, err
	}
	rep.Errors = bad
	if len(examples) == 0 {
		// An empty, binary or wrong-format file: an empty dataset and run would
		// only hide the mistake.
		return rep, fmt.Errorf("dataformat: import %s as %s: %w (%d bad rows)", path, f, ErrNothingImported, len(bad))
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	name := opt.Dataset
	if name == "" {
		name = string(f) + "/" + base
	}
	if rep.Dataset, err = s.FreeDatasetName(ctx, name); err != nil {
		return rep, fmt.Errorf("dataformat: %w", err)
	}
	split := "sft:" + string(f) + "/" + base
	abs, _ := filepath.Abs(path)
	cfg, _ := json.Marshal(map[string]any{"source": abs, "format": f, "rows": len(examples) + len(bad)})

	err = s.WithTx(ctx, func(tx *store.Tx) error {
		run := store.Run{Kind: store.KindImport, Config: string(cfg), Split: split, Status: store.StatusDone}
		if _, err := tx.CreateRun(ctx, &run); err != nil {
			return err
		}
		rep.RunID = run.ID
		qs := make([]store.Question, len(examples))
		for i, ex := range examples {
			t := &examples[i].Trajectory
			if opt.Method != "" {
				t.Method = opt.Method
			}
			qs[i] = store.Question{Task: t.Task, Split: split, Index: ex.Row, Text: t.Question}
		}
		if err := tx.UpsertQuestions(ctx, qs); err != nil {
			return err
		}
		ids := make([]int64, len(examples))
		for i, ex := range examples {
			ep := store.Episode{RunID: run.ID, QuestionID: qs[i].ID, Status: store.EpisodeDone,
				Source: fmt.Sprintf("%s:%d", path, ex.Line)}
			store.EpisodeFromTrajectory(&ep, ex.Trajectory)
			if err := tx.InsertEpisode(ctx, &ep, store.StepsFromTrajectory(ex.Trajectory)); err != nil {
				return fmt.Errorf("%s:%d: %w", path, ex.Line, err)
			}
			ids[i] = ep.ID
			rep.ByTask[ex.Trajectory.Task]++
			rep.ByMethod[ex.Trajectory.Method]++
		}
		recipe, _ := json.Marshal(map[string]any{"import": abs, "format": f})
		d := store.Dataset{Name: rep.Dataset, Recipe: string(recipe)}
		if _, err := tx.CreateDataset(ctx, &d, ids); err != nil {
			return err
		}
		rep.DatasetID = d.ID
		rep.Imported = len(ids)
		return nil
	})
	if err != nil {
		return Report{File: path, Format: f, Errors: bad}, fmt.Errorf("dataformat: import %s: %w", path, err)
	}
	return rep, nil
}

// DatasetTrajectories loads a dataset's trajectories in dataset order.
func DatasetTrajectories(ctx context.Context, s *store.Store, datasetID int64) ([]trajectory.Trajectory, error) {
	ids, err := s.DatasetEpisodeIDs(ctx, datasetID)
	if err != nil {
		return nil, err
	}
	out := make([]trajectory.Trajectory, 0, len(ids))
	for _, id := range ids {
		t, err := s.Trajectory(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Export writes a dataset in format f and returns the number of examples.
func Export(ctx context.Context, s *store.Store, datasetID int64, f Format, w io.Writer) (int, error) {
	if _, err := s.Dataset(ctx, datasetID); err != nil {
		return 0, fmt.Errorf("dataformat: export: %w", err)
	}
	ts, err := DatasetTrajectories(ctx, s, datasetID)
	if err != nil {
		return 0, fmt.Errorf("dataformat: export dataset %d: %w", datasetID, err)
	}
	if err := Write(w, f, ts); err != nil {
		return 0, err
	}
	return len(ts), nil
}
