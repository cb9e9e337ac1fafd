package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Tx is a write transaction for work that must land all at once or not at all,
// such as importing a file (run, questions, episodes and dataset together).
type Tx struct {
	tx *sql.Tx
}

// WithTx runs fn in one write transaction and commits if fn returns nil; any
// error rolls everything back.
func (s *Store) WithTx(ctx context.Context, fn func(*Tx) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return fn(&Tx{tx: tx}) })
}

// CreateRun is Store.CreateRun inside the transaction.
func (t *Tx) CreateRun(ctx context.Context, r *Run) (int64, error) {
	return createRun(ctx, t.tx, r)
}

// UpsertQuestions is Store.UpsertQuestions inside the transaction.
func (t *Tx) UpsertQuestions(ctx context.Context, qs []Question) error {
	if err := upsertQuestions(ctx, t.tx, qs); err != nil {
		return fmt.Errorf("store: upsert %d questions: %w", len(qs), err)
	}
	return nil
}

// InsertEpisode is Store.InsertEpisode inside the transaction.
func (t *Tx) InsertEpisode(ctx context.Context, ep *Episode, steps []Step) error {
	if err := insertEpisode(ctx, t.tx, ep, steps); err != nil {
		return fmt.Errorf("store: insert episode (run %d, question %d): %w", ep.RunID, ep.QuestionID, err)
	}
	return nil
}

// CreateDataset is Store.CreateDataset inside the transaction.
func (t *Tx) CreateDataset(ctx context.Context, d *Dataset, episodeIDs []int64) (int64, error) {
	return createDataset(ctx, t.tx, d, episodeIDs)
}
