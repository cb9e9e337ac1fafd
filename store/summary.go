package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// RunSummary aggregates a run's episodes.
type RunSummary struct {
	RunID    int64
	Episodes int                   // all recorded episodes
	ByStatus map[EpisodeStatus]int // episode count per status
	// Asked is the number of questions the run was asked: the run's Asked, or
	// the recorded episodes when that is unknown or smaller.
	Asked int
	// Answered counts the episodes that finished with an answer (status done).
	Answered int
	// EM, F1 and Reward are means over the questions asked, as FireAct
	// computes them (sum(rs) / len(idxs)): a question whose episode errored, did
	// not finish or is missing counts as 0.
	EM              float64
	F1              float64
	Reward          float64
	MeanTurns       float64 // mean over finished episodes (done + unfinished)
	PromptTokens    int64   // sums over finished episodes
	GeneratedTokens int64
	SecondsPerQ     float64 // mean episode latency in seconds over finished episodes
	Cost            float64 // total cost of finished episodes
}

// OutOfContext starts the error of an episode that ran out of the model's
// context. Such an episode is an error (a resume retries it, say with more
// KV cells) but, unlike a failed call, it is also a result: the agent did not
// answer within its context, so the means count it as wrong (EM, F1 and
// reward 0).
const OutOfContext = "out of context: "

// Summary returns the run summary the CLI reports. Error episodes count in
// ByStatus and as 0 in EM, F1 and Reward, but not in the per-episode means
// (turns, latency) or the token and cost sums: they are retried, not results.
func (s *Store) Summary(ctx context.Context, runID int64) (RunSummary, error) {
	sum := RunSummary{RunID: runID, ByStatus: map[EpisodeStatus]int{}}
	var asked int
	if err := s.db.QueryRowContext(ctx, `SELECT asked FROM runs WHERE id = ?`, runID).Scan(&asked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			err = ErrNotFound
		}
		return sum, fmt.Errorf("store: summary of run %d: %w", runID, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT status, count(*) FROM episodes WHERE run_id = ? GROUP BY status`, runID)
	if err != nil {
		return sum, fmt.Errorf("store: summary of run %d: %w", runID, err)
	}
	for rows.Next() {
		var st EpisodeStatus
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return sum, fmt.Errorf("store: summary of run %d: %w", runID, err)
		}
		sum.ByStatus[st] = n
		sum.Episodes += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return sum, fmt.Errorf("store: summary of run %d: %w", runID, err)
	}
	sum.Asked = max(asked, sum.Episodes)
	sum.Answered = sum.ByStatus[EpisodeDone]
	err = s.db.QueryRowContext(ctx, `SELECT coalesce(sum(em), 0), coalesce(sum(f1), 0), coalesce(sum(reward), 0),
		coalesce(avg(turns), 0), coalesce(sum(prompt_tokens), 0), coalesce(sum(generated_tokens), 0),
		coalesce(avg(latency_s), 0), coalesce(sum(cost), 0)
		FROM episodes WHERE run_id = ? AND (status != ? OR substr(error, 1, ?) = ?)`,
		runID, EpisodeError, len(OutOfContext), OutOfContext).Scan(
		&sum.EM, &sum.F1, &sum.Reward, &sum.MeanTurns, &sum.PromptTokens, &sum.GeneratedTokens,
		&sum.SecondsPerQ, &sum.Cost)
	if err != nil {
		return sum, fmt.Errorf("store: summary of run %d: %w", runID, err)
	}
	if sum.Asked > 0 {
		n := float64(sum.Asked)
		sum.EM, sum.F1, sum.Reward = sum.EM/n, sum.F1/n, sum.Reward/n
	}
	return sum, nil
}

// SetRunAsked records the number of questions a run was asked.
func (s *Store) SetRunAsked(ctx context.Context, id int64, asked int) error {
	res, err := s.exec(ctx, `UPDATE runs SET asked = ? WHERE id = ?`, asked, id)
	if err != nil {
		return fmt.Errorf("store: set run %d asked %d: %w", id, asked, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: set run %d asked: %w", id, ErrNotFound)
	}
	return nil
}

// DiffRow compares two runs on one question. A side without an episode has
// its Has flag false.
type DiffRow struct {
	Index            int
	Question         string
	Gold             string
	HasA, HasB       bool
	PredA, PredB     string
	EMA, EMB         float64
	F1A, F1B         float64
	StatusA, StatusB EpisodeStatus
}

// Diff returns the per-question comparison of runs a and b, over the questions
// either run answered, matched by task, split and index (so runs recorded
// against the same split compare even when one was imported), in index order.
func (s *Store) Diff(ctx context.Context, a, b int64) ([]DiffRow, error) {
	rows, err := s.db.QueryContext(ctx, `
		WITH ea AS (SELECT q.task, q.split, q.idx, q.text, q.gold, e.prediction, e.em, e.f1, e.status
		            FROM episodes e JOIN questions q ON q.id = e.question_id WHERE e.run_id = ?),
		     eb AS (SELECT q.task, q.split, q.idx, q.text, q.gold, e.prediction, e.em, e.f1, e.status
		            FROM episodes e JOIN questions q ON q.id = e.question_id WHERE e.run_id = ?)
		SELECT ea.idx, ea.text, ea.gold, 1, eb.idx IS NOT NULL, ea.prediction, coalesce(eb.prediction, ''),
		       ea.em, coalesce(eb.em, 0), ea.f1, coalesce(eb.f1, 0), ea.status, coalesce(eb.status, '')
		FROM ea LEFT JOIN eb ON eb.task = ea.task AND eb.split = ea.split AND eb.idx = ea.idx
		UNION ALL
		SELECT eb.idx, eb.text, eb.gold, 0, 1, '', eb.prediction, 0, eb.em, 0, eb.f1, '', eb.status
		FROM eb WHERE NOT EXISTS (SELECT 1 FROM ea WHERE ea.task = eb.task AND ea.split = eb.split AND ea.idx = eb.idx)
		ORDER BY 1`, a, b)
	if err != nil {
		return nil, fmt.Errorf("store: diff runs %d and %d: %w", a, b, err)
	}
	defer rows.Close()
	var out []DiffRow
	for rows.Next() {
		var d DiffRow
		if err := rows.Scan(&d.Index, &d.Question, &d.Gold, &d.HasA, &d.HasB, &d.PredA, &d.PredB,
			&d.EMA, &d.EMB, &d.F1A, &d.F1B, &d.StatusA, &d.StatusB); err != nil {
			return nil, fmt.Errorf("store: diff runs %d and %d: %w", a, b, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: diff runs %d and %d: %w", a, b, err)
	}
	return out, nil
}
