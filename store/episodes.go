package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrEpisodeExists is returned by InsertEpisode when the run already has a
// finished (not EpisodeError) episode for the question.
var ErrEpisodeExists = errors.New("store: run already has a finished episode for this question")

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// InsertEpisode records an episode and its steps in one transaction, so a
// crash leaves either the whole episode or none of it. An earlier EpisodeError
// episode of the same run and question is replaced (that is how a resume
// retries it); a finished one gives ErrEpisodeExists. ep.ID is filled in.
func (s *Store) InsertEpisode(ctx context.Context, ep *Episode, steps []Step) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return insertEpisode(ctx, tx, ep, steps)
	})
	if err != nil {
		return fmt.Errorf("store: insert episode (run %d, question %d): %w", ep.RunID, ep.QuestionID, err)
	}
	return nil
}

func insertEpisode(ctx context.Context, q querier, ep *Episode, steps []Step) error {
	if ep.Status == "" {
		ep.Status = EpisodeDone
	}
	if ep.CreatedAt.IsZero() {
		ep.CreatedAt = time.Now().UTC()
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM episodes WHERE run_id = ? AND question_id = ? AND status = ?`,
		ep.RunID, ep.QuestionID, EpisodeError); err != nil {
		return fmt.Errorf("replace failed episode: %w", err)
	}
	res, err := q.ExecContext(ctx, `INSERT INTO episodes (run_id, question_id, status, method, prediction,
		em, f1, reward, turns, prompt_tokens, generated_tokens, latency_s, cost, error, text_prefix,
		text_suffix, numbered, layout, source, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, question_id) DO NOTHING`,
		ep.RunID, ep.QuestionID, ep.Status, ep.Method, ep.Prediction, ep.EM, ep.F1, ep.Reward, ep.Turns,
		ep.PromptTokens, ep.GeneratedTokens, ep.LatencySeconds, ep.Cost, ep.Error, ep.TextPrefix,
		ep.TextSuffix, ep.Numbered, ep.Layout, ep.Source, ep.CreatedAt.UTC())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrEpisodeExists
	}
	if ep.ID, err = res.LastInsertId(); err != nil {
		return err
	}
	if len(steps) == 0 {
		return nil
	}
	stmt, err := q.PrepareContext(ctx, `INSERT INTO steps (episode_id, n, reflection, thought, action,
		argument, observation, raw, verbatim, prompt_tokens, generated_tokens, latency_s, noise)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i, st := range steps {
		// Positions come from the slice order, so callers cannot record gaps.
		if _, err := stmt.ExecContext(ctx, ep.ID, i, st.Reflection, st.Thought, st.Action, st.Argument,
			st.Observation, st.Raw, st.Verbatim, st.PromptTokens, st.GeneratedTokens, st.LatencySeconds,
			st.Noise); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

const episodeColumns = `e.id, e.run_id, e.question_id, e.status, e.method, e.prediction, e.em, e.f1,
	e.reward, e.turns, e.prompt_tokens, e.generated_tokens, e.latency_s, e.cost, e.error, e.text_prefix,
	e.text_suffix, e.numbered, e.layout, e.source, e.created_at`

func scanEpisode(sc scanner) (Episode, error) {
	var e Episode
	err := sc.Scan(&e.ID, &e.RunID, &e.QuestionID, &e.Status, &e.Method, &e.Prediction, &e.EM, &e.F1,
		&e.Reward, &e.Turns, &e.PromptTokens, &e.GeneratedTokens, &e.LatencySeconds, &e.Cost, &e.Error,
		&e.TextPrefix, &e.TextSuffix, &e.Numbered, &e.Layout, &e.Source, &e.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Episode{}, ErrNotFound
	}
	return e, err
}

// Episode returns the episode with the given id, or ErrNotFound.
func (s *Store) Episode(ctx context.Context, id int64) (Episode, error) {
	e, err := scanEpisode(s.db.QueryRowContext(ctx, `SELECT `+episodeColumns+` FROM episodes e WHERE e.id = ?`, id))
	if err != nil {
		return Episode{}, fmt.Errorf("store: episode %d: %w", id, err)
	}
	return e, nil
}

// Episodes returns a run's episodes in question index order.
func (s *Store) Episodes(ctx context.Context, runID int64) ([]Episode, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+episodeColumns+` FROM episodes e
		JOIN questions q ON q.id = e.question_id WHERE e.run_id = ? ORDER BY q.idx, e.id`, runID)
	if err != nil {
		return nil, fmt.Errorf("store: episodes of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []Episode
	for rows.Next() {
		e, err := scanEpisode(rows)
		if err != nil {
			return nil, fmt.Errorf("store: episodes of run %d: %w", runID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: episodes of run %d: %w", runID, err)
	}
	return out, nil
}

// Steps returns an episode's steps in order.
func (s *Store) Steps(ctx context.Context, episodeID int64) ([]Step, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT n, reflection, thought, action, argument, observation,
		raw, verbatim, prompt_tokens, generated_tokens, latency_s, noise
		FROM steps WHERE episode_id = ? ORDER BY n`, episodeID)
	if err != nil {
		return nil, fmt.Errorf("store: steps of episode %d: %w", episodeID, err)
	}
	defer rows.Close()
	var out []Step
	for rows.Next() {
		var st Step
		if err := rows.Scan(&st.N, &st.Reflection, &st.Thought, &st.Action, &st.Argument, &st.Observation,
			&st.Raw, &st.Verbatim, &st.PromptTokens, &st.GeneratedTokens, &st.LatencySeconds, &st.Noise); err != nil {
			return nil, fmt.Errorf("store: steps of episode %d: %w", episodeID, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: steps of episode %d: %w", episodeID, err)
	}
	return out, nil
}

// FinishedIndices returns the question indices for which the run has a
// finished episode (any status but EpisodeError).
func (s *Store) FinishedIndices(ctx context.Context, runID int64) (map[int]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT q.idx FROM episodes e JOIN questions q ON q.id = e.question_id
		WHERE e.run_id = ? AND e.status != ?`, runID, EpisodeError)
	if err != nil {
		return nil, fmt.Errorf("store: finished episodes of run %d: %w", runID, err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var i int
		if err := rows.Scan(&i); err != nil {
			return nil, fmt.Errorf("store: finished episodes of run %d: %w", runID, err)
		}
		done[i] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: finished episodes of run %d: %w", runID, err)
	}
	return done, nil
}

// MissingIndices returns, in the given order, the question indices of planned
// that the run has no finished episode for: what a resumed run still has to do.
func (s *Store) MissingIndices(ctx context.Context, runID int64, planned []int) ([]int, error) {
	done, err := s.FinishedIndices(ctx, runID)
	if err != nil {
		return nil, err
	}
	var missing []int
	for _, i := range planned {
		if !done[i] {
			missing = append(missing, i)
		}
	}
	return missing, nil
}
