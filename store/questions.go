package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// UpsertQuestions records questions (keyed by task, split and index), updating
// text, id, gold and metadata of existing ones, and fills in each ID. All rows
// are written in one transaction.
func (s *Store) UpsertQuestions(ctx context.Context, qs []Question) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return upsertQuestions(ctx, tx, qs)
	})
	if err != nil {
		return fmt.Errorf("store: upsert %d questions: %w", len(qs), err)
	}
	return nil
}

func upsertQuestions(ctx context.Context, tx *sql.Tx, qs []Question) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO questions (task, split, idx, qid, text, gold, metadata)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (task, split, idx) DO UPDATE SET qid = excluded.qid, text = excluded.text,
			gold = excluded.gold, metadata = excluded.metadata
		RETURNING id`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range qs {
		q := &qs[i]
		if err := stmt.QueryRowContext(ctx, q.Task, q.Split, q.Index, q.QID, q.Text, q.Gold,
			jsonOrEmpty(q.Metadata)).Scan(&q.ID); err != nil {
			return fmt.Errorf("question %s/%s/%d: %w", q.Task, q.Split, q.Index, err)
		}
	}
	return nil
}

// Question returns the question with the given id, or ErrNotFound.
func (s *Store) Question(ctx context.Context, id int64) (Question, error) {
	var q Question
	err := s.db.QueryRowContext(ctx, `SELECT id, task, split, idx, qid, text, gold, metadata
		FROM questions WHERE id = ?`, id).Scan(&q.ID, &q.Task, &q.Split, &q.Index, &q.QID, &q.Text, &q.Gold, &q.Metadata)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return Question{}, fmt.Errorf("store: question %d: %w", id, err)
	}
	return q, nil
}
