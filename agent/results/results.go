// Package results imports FireAct's evaluation result files (trajs/*.json:
// {"<question index>": {reward, em, f1, gt, pred, traj, ...}}) into the store
// as an eval run, re-scoring every prediction with fireact's own metrics so a
// FireAct result and a fireact run compare in one report.
package results

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// Entry is one question's record in a FireAct result file.
type Entry struct {
	Reward any     `json:"reward"` // bool or number
	EM     float64 `json:"em"`
	F1     float64 `json:"f1"`
	Gold   any     `json:"gt"` // string, or bool for StrategyQA
	Pred   string  `json:"pred"`
	Traj   string  `json:"traj"`
}

// Options say what a result file holds.
type Options struct {
	Task   string // task name (hotpotqa, strategyqa, mmlu, bamboogle)
	Split  string // split the indices refer to ("dev")
	Name   string // optional run name
	Method string // optional method label (react, cot, ...)
	Model  string // optional model label (e.g. gpt-4)
}

// Report summarises an import.
type Report struct {
	RunID         int64
	Episodes      int
	FireActEM     float64 // mean of the file's own em
	FireActF1     float64
	EM            float64 // mean EM recomputed by fireact
	F1            float64
	Disagreements int // questions whose recomputed EM differs from the file's
}

// ReadFile reads a FireAct result file, returning the entries by index.
func ReadFile(path string) (map[int]Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("results: %s: not a {index: result} object: %w", path, err)
	}
	out := make(map[int]Entry, len(raw))
	for k, v := range raw {
		i, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("results: %s: key %q is not a question index", path, k)
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("results: %s: entry %q: %w", path, k, err)
		}
		out[i] = e
	}
	return out, nil
}

// ImportFile imports a result file as an eval run. task, when non-nil,
// supplies question texts and gold answers by index (the file's gt is used
// otherwise) and the metric; EM and F1 are recomputed, the file's own values
// kept in the report for comparison. Run, questions and episodes are written
// in one transaction.
func ImportFile(ctx context.Context, s *store.Store, path string, task tasks.Task, opt Options) (Report, error) {
	entries, err := ReadFile(path)
	if err != nil {
		return Report{}, err
	}
	if opt.Task == "" && task != nil {
		opt.Task = task.Name()
	}
	if opt.Split == "" && task != nil {
		opt.Split = task.Split()
	}
	if opt.Task == "" || opt.Split == "" {
		return Report{}, fmt.Errorf("results: %s: task and split are required", path)
	}
	score := tasks.ScorerFor(opt.Task)
	if task != nil {
		score = task.Score
	}
	idx := make([]int, 0, len(entries))
	for i := range entries {
		if task != nil && (i < 0 || i >= task.Len()) {
			return Report{}, fmt.Errorf("results: %s: index %d outside %s/%s (%d questions)", path, i, opt.Task, opt.Split, task.Len())
		}
		idx = append(idx, i)
	}
	sort.Ints(idx)

	abs, _ := filepath.Abs(path)
	cfg, _ := json.Marshal(map[string]any{"source": abs, "origin": "fireact-results"})
	var rep Report
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		run := store.Run{Name: opt.Name, Kind: store.KindEval, Config: string(cfg), Task: opt.Task, Split: opt.Split,
			Method: opt.Method, Model: opt.Model, Status: store.StatusDone}
		if _, err := tx.CreateRun(ctx, &run); err != nil {
			return err
		}
		rep.RunID = run.ID
		qs := make([]store.Question, len(idx))
		for k, i := range idx {
			e := entries[i]
			q := store.Question{Task: opt.Task, Split: opt.Split, Index: i, Gold: goldString(e.Gold), Text: questionFromTraj(e.Traj)}
			if task != nil {
				tq := task.Question(i)
				meta, _ := json.Marshal(tq.Metadata)
				q.Text, q.Gold, q.QID, q.Metadata = tq.Text, tq.Gold, tq.ID, string(meta)
			}
			qs[k] = q
		}
		if err := tx.UpsertQuestions(ctx, qs); err != nil {
			return err
		}
		for k, i := range idx {
			e := entries[i]
			t := trajectory.Parse(e.Traj)
			t.Method = opt.Method
			sc := score(e.Pred, qs[k].Gold)
			ep := store.Episode{RunID: run.ID, QuestionID: qs[k].ID, Status: store.EpisodeUnfinished,
				Source: fmt.Sprintf("%s:%d", path, i)}
			store.EpisodeFromTrajectory(&ep, t)
			for _, st := range t.Steps {
				if st.IsFinish() {
					ep.Status = store.EpisodeDone
				}
			}
			ep.Prediction, ep.EM, ep.F1, ep.Reward = e.Pred, sc.EM, sc.F1, rewardValue(e.Reward)
			if err := tx.InsertEpisode(ctx, &ep, store.StepsFromTrajectory(t)); err != nil {
				return fmt.Errorf("index %d: %w", i, err)
			}
			rep.Episodes++
			rep.FireActEM += e.EM
			rep.FireActF1 += e.F1
			rep.EM += sc.EM
			rep.F1 += sc.F1
			if sc.EM != e.EM {
				rep.Disagreements++
			}
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("results: import %s: %w", path, err)
	}
	if n := float64(rep.Episodes); n > 0 {
		rep.FireActEM /= n
		rep.FireActF1 /= n
		rep.EM /= n
		rep.F1 /= n
	}
	return rep, nil
}

// questionFromTraj takes the question from a trajectory that starts with
// "Question: ..." (FireAct's traj text), else "".
func questionFromTraj(traj string) string {
	first, _, _ := strings.Cut(strings.TrimLeft(traj, "\n"), "\n")
	if q, ok := strings.CutPrefix(first, "Question:"); ok {
		return strings.TrimSpace(q)
	}
	return ""
}

// goldString renders FireAct's gt: strings as is, StrategyQA's booleans as
// yes/no.
func goldString(v any) string {
	switch g := v.(type) {
	case string:
		return g
	case bool:
		if g {
			return "yes"
		}
		return "no"
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// rewardValue reads FireAct's reward (true/false or a number).
func rewardValue(v any) float64 {
	switch r := v.(type) {
	case bool:
		if r {
			return 1
		}
		return 0
	case float64:
		return r
	}
	return 0
}
