// Package results imports FireAct's evaluation result files (trajs/*.json,
// written by FireAct's generation.py: {"<question index>": {reward, em, f1, gt,
// pred, prompt, traj, ...}}) into the store as an eval run, re-scoring every
// prediction with fireact's own metrics so a FireAct result and a fireact run
// compare in one report.
//
// FireAct writes em and reward as JSON booleans, gt and pred normalised, and
// traj in one of two layouts: text (the alpaca prompt or "Question: ..." line
// followed by the Thought/Action/Observation lines) for completion models, or
// the list of chat messages after the few-shot prompt for chat models. It dumps
// only the questions whose episode finished, so a file can hold fewer entries
// than the questions asked; its file name carries the range asked
// ("hotpotqa_dev_0_500_<model>_<temperature>_<time>.json") and its EM is
// sum(rs) / len(idxs), a missing question counting as 0. The imported run
// records the number asked, so its EM is FireAct's.
package results

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// Entry is one question's record in a FireAct result file.
type Entry struct {
	Reward Score   `json:"reward"` // bool in FireAct's files, or a number
	EM     Score   `json:"em"`     // bool in FireAct's files, or a number
	F1     float64 `json:"f1"`
	Gold   any     `json:"gt"` // string, or bool for StrategyQA
	Pred   string  `json:"pred"`
	Traj   Traj    `json:"traj"`
}

// Score is a 0/1 outcome FireAct writes as a JSON boolean (Python's
// pred == gt); numbers and null are read too.
type Score float64

// UnmarshalJSON reads true, false, a number or null (0).
func (s *Score) UnmarshalJSON(b []byte) error {
	switch v := string(bytes.TrimSpace(b)); v {
	case "true":
		*s = 1
	case "false", "null":
		*s = 0
	default:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("want a boolean or a number, got %s", v)
		}
		*s = Score(f)
	}
	return nil
}

// Message is one chat message of a chat model's trajectory.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Traj is an entry's trajectory: Text for completion models (a JSON string),
// Messages for chat models (a JSON list of {role, content}).
type Traj struct {
	Text     string
	Messages []Message
}

// UnmarshalJSON reads a string or a list of chat messages.
func (t *Traj) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '[':
		if err := json.Unmarshal(b, &t.Messages); err != nil {
			return fmt.Errorf("traj: not a list of {role, content} messages: %w", err)
		}
		for i, m := range t.Messages {
			if m.Role == "" {
				return fmt.Errorf("traj: message %d has no role", i)
			}
		}
	case string(b) == "null":
	default:
		if err := json.Unmarshal(b, &t.Text); err != nil {
			return fmt.Errorf("traj: want a string or a list of messages: %w", err)
		}
	}
	return nil
}

// Options say what a result file holds.
type Options struct {
	Task   string // task name (hotpotqa, strategyqa, mmlu, bamboogle)
	Split  string // split the indices refer to ("dev")
	Name   string // optional run name
	Method string // optional method label (react, cot, ...)
	Model  string // model label (e.g. gpt-4); default: the model in the file name
	// Asked is the number of questions the run was asked; 0 takes it from the
	// file name's range, or, for a file not named the FireAct way, the number of
	// entries.
	Asked int
}

// Report summarises an import. Means are over the questions asked.
type Report struct {
	RunID         int64
	Episodes      int
	Asked         int     // questions asked
	Answered      int     // episodes that finished with an answer
	FireActEM     float64 // the file's own em, as a mean over the questions asked
	FireActF1     float64
	EM            float64 // mean EM recomputed by fireact
	F1            float64
	Disagreements int // questions whose recomputed EM differs from the file's
}

// FileName is what a FireAct result file name says:
// "<task>_<split>_<start>_<end>_<model>_<temperature>_<time>.json", as
// generation.py names it.
type FileName struct {
	Task, Split string
	Start, End  int // the range of question positions asked, end exclusive
	Model       string
	Temperature string
	Time        string
}

var fileNameRE = regexp.MustCompile(`^([a-z0-9]+)_([a-z0-9]+)_(\d+)_(\d+)_(.+)_(\d+(?:\.\d+)?)_(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)\.json$`)

// ParseFileName reads a FireAct result file name; ok is false for a file named
// otherwise.
func ParseFileName(path string) (FileName, bool) {
	m := fileNameRE.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return FileName{}, false
	}
	start, err1 := strconv.Atoi(m[3])
	end, err2 := strconv.Atoi(m[4])
	if err1 != nil || err2 != nil || end < start {
		return FileName{}, false
	}
	return FileName{Task: m[1], Split: m[2], Start: start, End: end, Model: m[5], Temperature: m[6], Time: m[7]}, true
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
// kept in the report for comparison. The run records the questions asked
// (Options.Asked, else the file name's range), so its EM is a mean over them as
// FireAct's is. Run, questions and episodes are written in one transaction.
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
	name, named := ParseFileName(path)
	if opt.Model == "" && named {
		opt.Model = name.Model
	}
	asked := opt.Asked
	switch {
	case asked < 0:
		return Report{}, fmt.Errorf("results: %s: asked %d is negative", path, asked)
	case asked == 0 && named:
		// generation.py slices the question list: idxs_all[start:end].
		start, end := name.Start, name.End
		if task != nil {
			start, end = min(start, task.Len()), min(end, task.Len())
		}
		asked = end - start
	case asked == 0:
		asked = len(entries)
	}
	if len(entries) > asked {
		return Report{}, fmt.Errorf("results: %s: %d entries but %d questions asked (use --asked)", path, len(entries), asked)
	}
	score := tasks.ScorerFor(opt.Task)
	if task != nil {
		score = task.Score
	}
	idx := make([]int, 0, len(entries))
	for i := range entries {
		switch {
		case i < 0:
			return Report{}, fmt.Errorf("results: %s: negative question index %d", path, i)
		case task != nil && i >= task.Len():
			return Report{}, fmt.Errorf("results: %s: index %d outside %s/%s (%d questions)", path, i, opt.Task, opt.Split, task.Len())
		}
		idx = append(idx, i)
	}
	sort.Ints(idx)

	abs, _ := filepath.Abs(path)
	cfg, _ := json.Marshal(map[string]any{"source": abs, "origin": "fireact-results", "asked": asked})
	rep := Report{Asked: asked}
	err = s.WithTx(ctx, func(tx *store.Tx) error {
		run := store.Run{Name: opt.Name, Kind: store.KindEval, Config: string(cfg), Task: opt.Task, Split: opt.Split,
			Method: opt.Method, Model: opt.Model, Asked: asked, Status: store.StatusDone}
		if _, err := tx.CreateRun(ctx, &run); err != nil {
			return err
		}
		rep.RunID = run.ID
		qs := make([]store.Question, len(idx))
		trajs := make([]trajectory.Trajectory, len(idx))
		for k, i := range idx {
			e := entries[i]
			question, t := trajectoryOf(e.Traj)
			trajs[k] = t
			q := store.Question{Task: opt.Task, Split: opt.Split, Index: i, Gold: goldString(e.Gold), Text: question}
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
			e, t := entries[i], trajs[k]
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
			ep.Prediction, ep.EM, ep.F1, ep.Reward = e.Pred, sc.EM, sc.F1, float64(e.Reward)
			if err := tx.InsertEpisode(ctx, &ep, store.StepsFromTrajectory(t)); err != nil {
				return fmt.Errorf("index %d: %w", i, err)
			}
			rep.Episodes++
			if ep.Status == store.EpisodeDone {
				rep.Answered++
			}
			rep.FireActEM += float64(e.EM)
			rep.FireActF1 += e.F1
			rep.EM += sc.EM
			rep.F1 += sc.F1
			if sc.EM != float64(e.EM) {
				rep.Disagreements++
			}
		}
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("results: import %s: %w", path, err)
	}
	if n := float64(rep.Asked); n > 0 {
		rep.FireActEM /= n
		rep.FireActF1 /= n
		rep.EM /= n
		rep.F1 /= n
	}
	return rep, nil
}

// trajectoryOf splits an entry's trajectory into the question and the parsed
// steps, for each layout FireAct writes.
func trajectoryOf(tr Traj) (string, trajectory.Trajectory) {
	if tr.Messages != nil {
		// Chat models: the question as the user's message, then the assistant's
		// "Thought: ...\nAction: ..." and the user's "Observation: ..." messages.
		ms := tr.Messages
		var question string
		if len(ms) > 0 && ms[0].Role == "user" {
			question, ms = strings.TrimSpace(ms[0].Content), ms[1:]
		}
		parts := make([]string, len(ms))
		for i, m := range ms {
			parts[i] = m.Content
		}
		t := trajectory.Parse(strings.Join(parts, "\n"))
		t.Question = question
		return question, t
	}
	if question, body, ok := cutAlpaca(tr.Text); ok {
		// Students trained on alpaca data (--alpaca_format): the prompt, then the
		// response lines.
		t := trajectory.Parse(body)
		t.Question = question
		return question, t
	}
	// The few-shot layout: the question line, kept in the trajectory's prefix.
	t := trajectory.Parse(tr.Text)
	t.Question = questionFromTraj(tr.Text)
	return t.Question, t
}

// cutAlpaca splits text made of FireAct's alpaca prompt and a response into
// the instruction and the response.
func cutAlpaca(text string) (instruction, response string, ok bool) {
	before, after, _ := strings.Cut(trajectory.AlpacaPrompt("\x00"), "\x00")
	rest, ok := strings.CutPrefix(text, before)
	if !ok {
		return "", "", false
	}
	instruction, response, ok = strings.Cut(rest, after)
	return strings.TrimSpace(instruction), response, ok
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
