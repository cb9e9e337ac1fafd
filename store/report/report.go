// Package report compares recorded runs: summary tables (EM, F1, turns,
// tokens and seconds per question, cost, noise), per-method and per-task
// breakdowns, a per-question diff of two runs, training loss curves, the
// reward, KL and clipping curves of policy-gradient (GRPO) training and the
// rounds of improve jobs. It builds one data model from
// the store and renders it three ways: an aligned terminal table (Text), JSON
// (JSON) and one self-contained HTML page with inline SVG plots (HTML) that
// needs no network to view.
//
// report imports only store and the standard library, so that any command can
// render a report without pulling in models or agents.
package report

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fireact/fireact/store"
)

// Options choose what a report covers.
type Options struct {
	// Runs are run ids or names, in the order to show them. Empty means every run
	// in the store, oldest first.
	Runs []string
	// DiffA and DiffB name the two runs to compare question by question. Empty
	// means: the two compared runs when exactly two are, otherwise no diff.
	DiffA, DiffB string
	// MaxDiffRows bounds the diff rows kept (0: all). The counts always cover
	// every question.
	MaxDiffRows int
}

// Report is the data model every renderer draws from.
type Report struct {
	GeneratedAt time.Time `json:"generated_at"`
	Database    string    `json:"database"`
	// Runs are the compared runs (every kind but train).
	Runs []RunRow `json:"runs"`
	// ByMethod and ByTask break each run down by agent method and by task.
	ByMethod []Breakdown `json:"by_method"`
	ByTask   []Breakdown `json:"by_task"`
	// Noise groups runs that differ only in their noise setting.
	Noise []NoiseGroup `json:"noise"`
	// Turns are the per-run histograms of turns per finished episode.
	Turns []TurnsHistogram `json:"turns"`
	Diff  *Diff            `json:"diff,omitempty"`
	// Loss are the training loss curves of the selected train runs.
	Loss []LossCurve `json:"loss"`
	// Policy are the per-step figures of the selected policy-gradient (GRPO)
	// train runs: reward, KL to the reference, clipped fraction, objective.
	Policy []PolicyCurve `json:"policy"`
	// Rounds are the rounds of improve jobs (rejection sampling), by job then
	// round: every job's when no runs are selected, else those of the jobs
	// with a selected dev run.
	Rounds []RoundRow `json:"rounds"`
}

// RoundRow is one round of an improve job.
type RoundRow struct {
	Job    string          `json:"job"`
	Round  int             `json:"round"`
	Status store.RunStatus `json:"status"`
	Phase  string          `json:"phase"`
	// Samples were drawn (K per question), Passed reached the reward
	// threshold, Kept are the distinct passed trajectories and Solved the
	// questions with one; the adapter trained on Self kept and Teacher
	// teacher examples.
	Samples int `json:"samples"`
	Passed  int `json:"passed"`
	Kept    int `json:"kept"`
	Solved  int `json:"solved"`
	K       int `json:"k"`
	Self    int `json:"self_examples"`
	Teacher int `json:"teacher_examples"`
	// KVShared is the share of the sampling's prompt tokens served from KV
	// cells another request had decoded (the K copies of a question share
	// their prompt).
	KVShared  float64 `json:"kv_shared"`
	DevEM     float64 `json:"dev_em"`
	DevF1     float64 `json:"dev_f1"`
	TrainLoss float64 `json:"train_loss"`
	Adapter   string  `json:"adapter,omitempty"`
}

// RunRow is one run's summary.
type RunRow struct {
	ID      int64   `json:"id"`
	Label   string  `json:"label"` // the name, or "#ID" when unnamed
	Kind    string  `json:"kind"`
	Model   string  `json:"model"`
	Adapter string  `json:"adapter,omitempty"`
	Method  string  `json:"method"`
	Task    string  `json:"task"`
	Split   string  `json:"split"`
	Noise   float64 `json:"noise"`
	// NoiseKind is the run's noise setting ("none", "random", "mixed"; "" when
	// clean or not recorded); OracleRetry is set when Reflexion retried
	// answers the gold answer said were wrong, an oracle that inflates EM.
	NoiseKind   string          `json:"noise_kind,omitempty"`
	OracleRetry bool            `json:"oracle_retry,omitempty"`
	Status      store.RunStatus `json:"status"`
	// Episodes counts all recorded episodes; Finished those that are results
	// (done or unfinished); Errors those that failed and would be retried.
	Episodes int `json:"episodes"`
	Finished int `json:"finished"`
	Errors   int `json:"errors"`
	// Asked is the number of questions the run was asked; Answered the
	// episodes that finished with an answer ("answered 499 of 500").
	Asked    int `json:"asked"`
	Answered int `json:"answered"`
	// EM and F1 are means over the questions asked, in [0, 1]: a question
	// whose episode errored, did not finish or is missing counts as 0.
	EM          float64 `json:"em"`
	F1          float64 `json:"f1"`
	MeanTurns   float64 `json:"mean_turns"`
	TokensPerQ  float64 `json:"tokens_per_question"`
	SecondsPerQ float64 `json:"seconds_per_question"`
	Cost        float64 `json:"cost"`
	CostPerQ    float64 `json:"cost_per_question"`
}

// Breakdown is a run's results restricted to one method or one task. Its
// means are over the group's finished episodes: a run records how many
// questions it was asked, not how many per method or task.
type Breakdown struct {
	RunID     int64   `json:"run_id"`
	Run       string  `json:"run"`
	Key       string  `json:"key"` // the method or task
	N         int     `json:"n"`   // finished episodes
	EM        float64 `json:"em"`
	F1        float64 `json:"f1"`
	MeanTurns float64 `json:"mean_turns"`
}

// NoiseGroup is a set of runs with the same model, adapter, method, task and
// split at different noise settings: the clean-versus-noisy comparison.
type NoiseGroup struct {
	// Config is the full configuration: model and adapter paths, method, task
	// and split.
	Config string `json:"config"`
	// Label names it in plots: the model and adapter file names without their
	// directories, then method, task and split.
	Label  string       `json:"label"`
	Points []NoisePoint `json:"points"` // by noise, clean first
}

// NoisePoint is one run of a NoiseGroup.
type NoisePoint struct {
	RunID int64   `json:"run_id"`
	Noise float64 `json:"noise"`
	EM    float64 `json:"em"`
}

// TurnsHistogram counts a run's finished episodes by number of turns:
// Counts[i] episodes took i turns.
type TurnsHistogram struct {
	RunID  int64  `json:"run_id"`
	Run    string `json:"run"`
	Counts []int  `json:"counts"`
}

// Diff compares two runs question by question.
type Diff struct {
	A RunRef `json:"a"`
	B RunRef `json:"b"`
	// Questions is the number of questions either run answered; Both those both did.
	Questions int `json:"questions"`
	Both      int `json:"both"`
	// AOnly and BOnly count the questions only one run got right (EM 1).
	AOnly int `json:"a_only_correct"`
	BOnly int `json:"b_only_correct"`
	// Rows are the questions where the runs differ (in EM, F1, status or coverage),
	// in question order, at most Options.MaxDiffRows of them.
	Rows      []DiffRow `json:"rows"`
	Truncated bool      `json:"truncated,omitempty"`
}

// RunRef names a run.
type RunRef struct {
	ID    int64  `json:"id"`
	Label string `json:"label"`
}

// DiffRow is one question of a Diff.
type DiffRow struct {
	Index    int     `json:"index"`
	Question string  `json:"question"`
	Gold     string  `json:"gold"`
	HasA     bool    `json:"has_a"`
	HasB     bool    `json:"has_b"`
	PredA    string  `json:"pred_a"`
	PredB    string  `json:"pred_b"`
	EMA      float64 `json:"em_a"`
	EMB      float64 `json:"em_b"`
	F1A      float64 `json:"f1_a"`
	F1B      float64 `json:"f1_b"`
	// StatusA and StatusB are the episode statuses ("" without an episode).
	StatusA store.EpisodeStatus `json:"status_a"`
	StatusB store.EpisodeStatus `json:"status_b"`
}

// LossCurve is a training run's loss by step.
type LossCurve struct {
	RunID int64 `json:"run_id"`
	// Run names the curve: the run's name, else its adapter's file name, with
	// "#ID" added where two curves would read alike.
	Run           string      `json:"run"`
	TrainingRunID int64       `json:"training_run_id"`
	Points        []LossPoint `json:"points"`
}

// LossPoint is one step of a LossCurve.
type LossPoint struct {
	Step int     `json:"step"`
	Loss float64 `json:"loss"`
}

// PolicyCurve is a policy-gradient (GRPO) training run's figures by step.
type PolicyCurve struct {
	RunID int64 `json:"run_id"`
	// Run names the curve as its loss curve is named.
	Run           string        `json:"run"`
	TrainingRunID int64         `json:"training_run_id"`
	Points        []PolicyPoint `json:"points"`
}

// PolicyPoint is one step of a PolicyCurve: the figures of the step's batch
// at the policy the step started from.
type PolicyPoint struct {
	Step     int     `json:"step"`
	Rollouts int     `json:"rollouts"`
	Tokens   int     `json:"tokens"`
	Reward   float64 `json:"reward"` // mean reward of the batch's rollouts
	// KL is the mean k3 KL estimate to the reference per token; nil when the
	// run had no reference (no KL penalty).
	KL        *float64 `json:"kl,omitempty"`
	Clipped   float64  `json:"clipped"` // fraction of tokens clipped
	Surrogate float64  `json:"surrogate"`
	Objective float64  `json:"objective"` // surrogate − β·KL; the loss is its negative
}

// Build reads the runs that opts select and computes the report.
func Build(ctx context.Context, st *store.Store, opts Options) (*Report, error) {
	runs, err := selectRuns(ctx, st, opts.Runs)
	if err != nil {
		return nil, err
	}
	rep := &Report{GeneratedAt: time.Now().UTC(), Database: st.Path(),
		Runs: []RunRow{}, ByMethod: []Breakdown{}, ByTask: []Breakdown{}, Noise: []NoiseGroup{}, Turns: []TurnsHistogram{}, Loss: []LossCurve{},
		Policy: []PolicyCurve{}, Rounds: []RoundRow{}}
	tasks := map[int64]string{} // question id → task, shared by all runs
	var compared []store.Run
	for _, r := range runs {
		if r.Kind == store.KindTrain {
			if err := rep.addTrainRun(ctx, st, r); err != nil {
				return nil, err
			}
			continue
		}
		compared = append(compared, r)
		if err := rep.addRun(ctx, st, r, tasks); err != nil {
			return nil, err
		}
	}
	rep.Noise = noiseGroups(compared, rep.Runs)
	disambiguateCurves(rep.Loss)
	nameLike(rep.Policy, rep.Loss)
	if rep.Rounds, err = rounds(ctx, st, runs, len(opts.Runs) == 0); err != nil {
		return nil, err
	}

	a, b := opts.DiffA, opts.DiffB
	if a == "" && b == "" && len(compared) == 2 {
		a, b = strconv.FormatInt(compared[0].ID, 10), strconv.FormatInt(compared[1].ID, 10)
	}
	if a != "" || b != "" {
		if a == "" || b == "" {
			return nil, errors.New("report: a diff needs two runs")
		}
		if rep.Diff, err = buildDiff(ctx, st, a, b, opts.MaxDiffRows); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// resolveRun finds a run by id or name.
func resolveRun(ctx context.Context, st *store.Store, spec string) (store.Run, error) {
	if id, err := strconv.ParseInt(spec, 10, 64); err == nil {
		r, err := st.Run(ctx, id)
		if err != nil {
			return r, fmt.Errorf("report: run %s: %w", spec, err)
		}
		return r, nil
	}
	r, err := st.RunByName(ctx, spec)
	if err != nil {
		return r, fmt.Errorf("report: run %q: %w", spec, err)
	}
	return r, nil
}

func selectRuns(ctx context.Context, st *store.Store, specs []string) ([]store.Run, error) {
	if len(specs) == 0 {
		runs, err := st.ListRuns(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		// ListRuns is newest first; a report reads better in the order runs were made.
		sort.Slice(runs, func(i, j int) bool { return runs[i].ID < runs[j].ID })
		return runs, nil
	}
	var out []store.Run
	seen := map[int64]bool{}
	for _, s := range specs {
		r, err := resolveRun(ctx, st, s)
		if err != nil {
			return nil, err
		}
		if !seen[r.ID] {
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	return out, nil
}

func label(r store.Run) string {
	if r.Name != "" {
		return r.Name
	}
	return "#" + strconv.FormatInt(r.ID, 10)
}

// fileLabel is a model or adapter path shortened to what tells it apart in a
// plot: its file name without directories and the .gguf extension.
func fileLabel(p string) string {
	if p == "" {
		return ""
	}
	return strings.TrimSuffix(path.Base(filepath.ToSlash(p)), ".gguf")
}

// curveLabel names a train run's loss curve: its name, else the adapter it
// trained, else its id.
func curveLabel(r store.Run) string {
	if r.Name == "" && r.Adapter != "" {
		return fileLabel(r.Adapter)
	}
	return label(r)
}

// acc accumulates finished episodes.
type acc struct {
	n             int
	em, f1, turns float64
}

func (a *acc) add(ep store.Episode) {
	a.n++
	a.em += ep.EM
	a.f1 += ep.F1
	a.turns += float64(ep.Turns)
}

func (a *acc) breakdown(r store.Run, key string) Breakdown {
	b := Breakdown{RunID: r.ID, Run: label(r), Key: key, N: a.n}
	if a.n > 0 {
		n := float64(a.n)
		b.EM, b.F1, b.MeanTurns = a.em/n, a.f1/n, a.turns/n
	}
	return b
}

// addRun summarises one run and adds its breakdowns and turns histogram.
func (rep *Report) addRun(ctx context.Context, st *store.Store, r store.Run, tasks map[int64]string) error {
	sum, err := st.Summary(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	eps, err := st.Episodes(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	row := RunRow{ID: r.ID, Label: label(r), Kind: r.Kind, Model: r.Model, Adapter: r.Adapter, Method: r.Method,
		Task: r.Task, Split: r.Split, Noise: r.Noise, Status: r.Status, Episodes: sum.Episodes,
		Errors: sum.ByStatus[store.EpisodeError], Asked: sum.Asked, Answered: sum.Answered, EM: sum.EM, F1: sum.F1, MeanTurns: sum.MeanTurns,
		SecondsPerQ: sum.SecondsPerQ, Cost: sum.Cost}
	row.NoiseKind, row.OracleRetry = configFlags(r.Config)
	row.Finished = sum.Episodes - row.Errors
	if row.Finished > 0 {
		row.TokensPerQ = float64(sum.PromptTokens+sum.GeneratedTokens) / float64(row.Finished)
		row.CostPerQ = sum.Cost / float64(row.Finished)
	}
	rep.Runs = append(rep.Runs, row)

	byMethod, byTask := map[string]*acc{}, map[string]*acc{}
	hist := TurnsHistogram{RunID: r.ID, Run: row.Label, Counts: []int{}}
	for _, ep := range eps {
		if ep.Status == store.EpisodeError {
			continue // retried later, not a result
		}
		task, ok := tasks[ep.QuestionID]
		if !ok {
			q, err := st.Question(ctx, ep.QuestionID)
			if err != nil {
				return fmt.Errorf("report: run %d: %w", r.ID, err)
			}
			task = q.Task
			tasks[ep.QuestionID] = task
		}
		method := ep.Method
		if method == "" {
			method = r.Method
		}
		for _, kv := range []struct {
			m   map[string]*acc
			key string
		}{{byMethod, method}, {byTask, task}} {
			a := kv.m[kv.key]
			if a == nil {
				a = &acc{}
				kv.m[kv.key] = a
			}
			a.add(ep)
		}
		for len(hist.Counts) <= ep.Turns {
			hist.Counts = append(hist.Counts, 0)
		}
		hist.Counts[max(ep.Turns, 0)]++
	}
	for _, k := range sortedKeys(byMethod) {
		rep.ByMethod = append(rep.ByMethod, byMethod[k].breakdown(r, k))
	}
	for _, k := range sortedKeys(byTask) {
		rep.ByTask = append(rep.ByTask, byTask[k].breakdown(r, k))
	}
	rep.Turns = append(rep.Turns, hist)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// noiseGroups groups runs by everything but their noise setting.
// configFlags reads the noise kind and oracle retry from a run's recorded
// configuration (agent.RunConfig's JSON); other configurations have neither.
func configFlags(config string) (noiseKind string, oracle bool) {
	var c struct {
		NoiseKind   string `json:"noise_kind"`
		OracleRetry bool   `json:"oracle_retry"`
	}
	if json.Unmarshal([]byte(config), &c) != nil {
		return "", false
	}
	return c.NoiseKind, c.OracleRetry
}

// methodLabel marks a method that used the gold answer to retry.
func methodLabel(method string, oracle bool) string {
	if oracle {
		return method + "+oracle"
	}
	return method
}

func noiseGroups(runs []store.Run, rows []RunRow) []NoiseGroup {
	idx := map[string]int{}
	groups := []NoiseGroup{}
	for i, r := range runs {
		cfg, lbl := r.Model, orDash(fileLabel(r.Model))
		if r.Adapter != "" {
			cfg += "+" + r.Adapter
			lbl += "+" + fileLabel(r.Adapter)
		}
		run := " " + methodLabel(r.Method, rows[i].OracleRetry) + " " + r.Task
		if r.Split != "" {
			run += "/" + r.Split
		}
		cfg += run
		lbl += run
		gi, ok := idx[cfg]
		if !ok {
			gi = len(groups)
			idx[cfg] = gi
			groups = append(groups, NoiseGroup{Config: cfg, Label: strings.TrimSpace(lbl)})
		}
		groups[gi].Points = append(groups[gi].Points, NoisePoint{RunID: r.ID, Noise: r.Noise, EM: rows[i].EM})
	}
	for _, g := range groups {
		sort.SliceStable(g.Points, func(i, j int) bool { return g.Points[i].Noise < g.Points[j].Noise })
	}
	return groups
}

// rounds lists the improve rounds to show: all, or those of the jobs with a
// dev run among runs.
func rounds(ctx context.Context, st *store.Store, runs []store.Run, all bool) ([]RoundRow, error) {
	rs, err := st.Rounds(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	jobs := map[string]bool{}
	if !all {
		sel := map[int64]bool{}
		for _, r := range runs {
			sel[r.ID] = true
		}
		for _, r := range rs {
			if sel[r.DevRunID] {
				jobs[r.Job] = true
			}
		}
	}
	out := []RoundRow{}
	for _, r := range rs {
		if !all && !jobs[r.Job] {
			continue
		}
		row := RoundRow{Job: r.Job, Round: r.Round, Status: r.Status, Phase: r.Phase, Samples: r.Samples, Passed: r.Passed,
			Kept: r.Kept, Solved: r.Solved, K: r.K, Self: r.SelfExamples, Teacher: r.TeacherExamples, DevEM: r.DevEM,
			DevF1: r.DevF1, TrainLoss: r.TrainLoss, Adapter: r.Adapter}
		if r.PromptTokens > 0 {
			row.KVShared = float64(r.PromptTokens-r.PromptDecoded) / float64(r.PromptTokens)
		}
		out = append(out, row)
	}
	return out, nil
}

// addTrainRun adds a train run's loss curve and, for a policy-gradient run,
// its policy curve. The store has no query from run to training run (the
// schema keeps one per run), so this reads the table directly.
func (rep *Report) addTrainRun(ctx context.Context, st *store.Store, r store.Run) error {
	var trID int64
	err := st.DB().QueryRowContext(ctx, `SELECT id FROM training_runs WHERE run_id = ?`, r.ID).Scan(&trID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("report: training run of run %d: %w", r.ID, err)
	}
	pts, err := st.LossCurve(ctx, trID)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if len(pts) > 0 {
		lc := LossCurve{RunID: r.ID, Run: curveLabel(r), TrainingRunID: trID, Points: make([]LossPoint, len(pts))}
		for i, p := range pts {
			lc.Points[i] = LossPoint{Step: p.Step, Loss: p.Loss}
		}
		rep.Loss = append(rep.Loss, lc)
	}
	steps, err := st.PolicyCurve(ctx, trID)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if len(steps) > 0 {
		pc := PolicyCurve{RunID: r.ID, Run: curveLabel(r), TrainingRunID: trID, Points: make([]PolicyPoint, len(steps))}
		for i, p := range steps {
			pc.Points[i] = PolicyPoint{Step: p.Step, Rollouts: p.Rollouts, Tokens: p.Tokens, Reward: p.Reward,
				Clipped: p.Clipped, Surrogate: p.Surrogate, Objective: p.Objective}
			if p.HasKL {
				kl := p.KL
				pc.Points[i].KL = &kl
			}
		}
		rep.Policy = append(rep.Policy, pc)
	}
	return nil
}

// nameLike gives each policy curve the (disambiguated) name of its run's
// loss curve, so that the two plots of one run read alike.
func nameLike(pcs []PolicyCurve, lcs []LossCurve) {
	names := map[int64]string{}
	for _, lc := range lcs {
		names[lc.RunID] = lc.Run
	}
	for i, pc := range pcs {
		if n, ok := names[pc.RunID]; ok {
			pcs[i].Run = n
		}
	}
}

// disambiguateCurves adds "#ID" to curve names that more than one curve has
// (two adapters with one file name in different directories).
func disambiguateCurves(cs []LossCurve) {
	seen := map[string]int{}
	for _, c := range cs {
		seen[c.Run]++
	}
	for i, c := range cs {
		if seen[c.Run] > 1 && c.Run != "#"+strconv.FormatInt(c.RunID, 10) {
			cs[i].Run += " #" + strconv.FormatInt(c.RunID, 10)
		}
	}
}

func buildDiff(ctx context.Context, st *store.Store, a, b string, maxRows int) (*Diff, error) {
	ra, err := resolveRun(ctx, st, a)
	if err != nil {
		return nil, err
	}
	rb, err := resolveRun(ctx, st, b)
	if err != nil {
		return nil, err
	}
	rows, err := st.Diff(ctx, ra.ID, rb.ID)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	d := &Diff{A: RunRef{ra.ID, label(ra)}, B: RunRef{rb.ID, label(rb)}, Questions: len(rows), Rows: []DiffRow{}}
	for _, r := range rows {
		if r.HasA && r.HasB {
			d.Both++
		}
		if r.EMA == 1 && r.EMB != 1 {
			d.AOnly++
		}
		if r.EMB == 1 && r.EMA != 1 {
			d.BOnly++
		}
		if r.HasA == r.HasB && r.EMA == r.EMB && r.F1A == r.F1B && r.StatusA == r.StatusB {
			continue
		}
		if maxRows > 0 && len(d.Rows) >= maxRows {
			d.Truncated = true
			continue
		}
		d.Rows = append(d.Rows, DiffRow{Index: r.Index, Question: r.Question, Gold: r.Gold, HasA: r.HasA, HasB: r.HasB,
			PredA: r.PredA, PredB: r.PredB, EMA: r.EMA, EMB: r.EMB, F1A: r.F1A, F1B: r.F1B,
			StatusA: r.StatusA, StatusB: r.StatusB})
	}
	return d, nil
}
