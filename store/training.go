package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CreateTrainingRun records a training job for an existing run of kind train
// and returns its id.
func (s *Store) CreateTrainingRun(ctx context.Context, tr *TrainingRun) (int64, error) {
	if tr.Status == "" {
		tr.Status = StatusRunning
	}
	if tr.CreatedAt.IsZero() {
		tr.CreatedAt = time.Now().UTC()
	}
	var dataset any
	if tr.DatasetID != 0 {
		dataset = tr.DatasetID
	}
	hp, err := RedactConfig(tr.Hyperparams)
	if err != nil {
		return 0, fmt.Errorf("store: create training run for run %d: %w", tr.RunID, err)
	}
	res, err := s.exec(ctx, `INSERT INTO training_runs (run_id, dataset_id, hyperparams,
		output_adapter, status, created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		tr.RunID, dataset, hp, tr.OutputAdapter, tr.Status, tr.CreatedAt.UTC(), nullTime(tr.FinishedAt))
	if err != nil {
		return 0, fmt.Errorf("store: create training run for run %d: %w", tr.RunID, err)
	}
	if tr.ID, err = res.LastInsertId(); err != nil {
		return 0, fmt.Errorf("store: create training run for run %d: %w", tr.RunID, err)
	}
	tr.Hyperparams = hp
	return tr.ID, nil
}

// TrainingRun returns the training run with the given id, or ErrNotFound.
func (s *Store) TrainingRun(ctx context.Context, id int64) (TrainingRun, error) {
	var tr TrainingRun
	var dataset sql.NullInt64
	var finished sql.NullTime
	err := s.db.QueryRowContext(ctx, `SELECT id, run_id, dataset_id, hyperparams, output_adapter, status,
		created_at, finished_at FROM training_runs WHERE id = ?`, id).Scan(&tr.ID, &tr.RunID, &dataset,
		&tr.Hyperparams, &tr.OutputAdapter, &tr.Status, &tr.CreatedAt, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return TrainingRun{}, fmt.Errorf("store: training run %d: %w", id, err)
	}
	tr.DatasetID = dataset.Int64
	tr.FinishedAt = timeOrZero(finished)
	return tr, nil
}

// FinishTrainingRun sets a training run's final status and output adapter.
func (s *Store) FinishTrainingRun(ctx context.Context, id int64, status RunStatus, outputAdapter string) error {
	_, err := s.exec(ctx, `UPDATE training_runs SET status = ?, output_adapter = ?, finished_at = ?
		WHERE id = ?`, status, outputAdapter, time.Now().UTC(), id)
	if err != nil {
		return fmt.Errorf("store: finish training run %d: %w", id, err)
	}
	return nil
}

// AddLossPoints appends points to a training run's loss curve; a point for a
// step already recorded replaces it (a resumed training re-logs its steps).
func (s *Store) AddLossPoints(ctx context.Context, trainingRunID int64, pts []LossPoint) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO loss_points
			(training_run_id, step, loss, lr, tokens, elapsed_s) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range pts {
			if _, err := stmt.ExecContext(ctx, trainingRunID, p.Step, p.Loss, p.LR, p.Tokens, p.ElapsedSeconds); err != nil {
				return fmt.Errorf("step %d: %w", p.Step, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add loss points to training run %d: %w", trainingRunID, err)
	}
	return nil
}

// LossCurve returns a training run's loss points in step order.
func (s *Store) LossCurve(ctx context.Context, trainingRunID int64) ([]LossPoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT step, loss, lr, tokens, elapsed_s FROM loss_points
		WHERE training_run_id = ? ORDER BY step`, trainingRunID)
	if err != nil {
		return nil, fmt.Errorf("store: loss curve of training run %d: %w", trainingRunID, err)
	}
	defer rows.Close()
	var out []LossPoint
	for rows.Next() {
		var p LossPoint
		if err := rows.Scan(&p.Step, &p.Loss, &p.LR, &p.Tokens, &p.ElapsedSeconds); err != nil {
			return nil, fmt.Errorf("store: loss curve of training run %d: %w", trainingRunID, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: loss curve of training run %d: %w", trainingRunID, err)
	}
	return out, nil
}

// AddPolicySteps records the policy-gradient figures of a training run's
// steps; a step already recorded is replaced (a resumed run re-logs the steps
// after its checkpoint).
func (s *Store) AddPolicySteps(ctx context.Context, trainingRunID int64, steps []PolicyStep) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO policy_steps
			(training_run_id, step, rollouts, tokens, reward, surrogate, kl, clipped, objective)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range steps {
			var kl any
			if p.HasKL {
				kl = p.KL
			}
			if _, err := stmt.ExecContext(ctx, trainingRunID, p.Step, p.Rollouts, p.Tokens, p.Reward, p.Surrogate,
				kl, p.Clipped, p.Objective); err != nil {
				return fmt.Errorf("step %d: %w", p.Step, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add policy steps to training run %d: %w", trainingRunID, err)
	}
	return nil
}

// PolicyCurve returns a training run's policy-gradient steps in step order
// (none for a supervised run).
func (s *Store) PolicyCurve(ctx context.Context, trainingRunID int64) ([]PolicyStep, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT step, rollouts, tokens, reward, surrogate, kl, clipped, objective
		FROM policy_steps WHERE training_run_id = ? ORDER BY step`, trainingRunID)
	if err != nil {
		return nil, fmt.Errorf("store: policy curve of training run %d: %w", trainingRunID, err)
	}
	defer rows.Close()
	var out []PolicyStep
	for rows.Next() {
		var p PolicyStep
		var kl sql.NullFloat64
		if err := rows.Scan(&p.Step, &p.Rollouts, &p.Tokens, &p.Reward, &p.Surrogate, &kl, &p.Clipped, &p.Objective); err != nil {
			return nil, fmt.Errorf("store: policy curve of training run %d: %w", trainingRunID, err)
		}
		p.KL, p.HasKL = kl.Float64, kl.Valid
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: policy curve of training run %d: %w", trainingRunID, err)
	}
	return out, nil
}
