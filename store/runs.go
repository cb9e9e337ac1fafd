package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

const runColumns = `id, coalesce(name, ''), kind, config, model, model_hash, adapter, adapter_hash,
	method, task, split, noise, seed, asked, status, created_at, finished_at`

// CreateRun inserts r (ID, CreatedAt and an empty Status are filled in) and
// returns its id. Secrets in r.Config are redacted before writing.
func (s *Store) CreateRun(ctx context.Context, r *Run) (int64, error) {
	return createRun(ctx, s.db, r)
}

func createRun(ctx context.Context, q querier, r *Run) (int64, error) {
	cfg, err := RedactConfig(r.Config)
	if err != nil {
		return 0, fmt.Errorf("store: create run: %w", err)
	}
	if r.Status == "" {
		r.Status = StatusRunning
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC()
	}
	var name any
	if r.Name != "" {
		name = r.Name
	}
	res, err := q.ExecContext(ctx, `INSERT INTO runs (name, kind, config, model, model_hash, adapter,
		adapter_hash, method, task, split, noise, seed, asked, status, created_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		name, r.Kind, cfg, r.Model, r.ModelHash, r.Adapter, r.AdapterHash, r.Method, r.Task,
		r.Split, r.Noise, r.Seed, r.Asked, r.Status, r.CreatedAt.UTC(), nullTime(r.FinishedAt))
	if err != nil {
		return 0, fmt.Errorf("store: create run %q: %w", r.Name, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("store: create run %q: %w", r.Name, err)
	}
	r.ID = id
	r.Config = cfg
	return id, nil
}

// Run returns the run with the given id, or ErrNotFound.
func (s *Store) Run(ctx context.Context, id int64) (Run, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id)
	r, err := scanRun(row)
	if err != nil {
		return Run{}, fmt.Errorf("store: run %d: %w", id, err)
	}
	return r, nil
}

// RunByName returns the run with the given name, or ErrNotFound.
func (s *Store) RunByName(ctx context.Context, name string) (Run, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE name = ?`, name)
	r, err := scanRun(row)
	if err != nil {
		return Run{}, fmt.Errorf("store: run %q: %w", name, err)
	}
	return r, nil
}

// ListRuns returns runs newest first; kind "" lists every kind.
func (s *Store) ListRuns(ctx context.Context, kind string) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+runColumns+` FROM runs
		WHERE ? = '' OR kind = ? ORDER BY id DESC`, kind, kind)
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	return out, nil
}

// SetRunStatus sets a run's status; a final status (anything but running) also
// sets finished_at, and running clears it (a resumed run).
func (s *Store) SetRunStatus(ctx context.Context, id int64, status RunStatus) error {
	var finished any
	if status != StatusRunning {
		finished = time.Now().UTC()
	}
	res, err := s.exec(ctx, `UPDATE runs SET status = ?, finished_at = ? WHERE id = ?`, status, finished, id)
	if err != nil {
		return fmt.Errorf("store: set run %d status %s: %w", id, status, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: set run %d status: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteRun deletes a run with its episodes and steps.
func (s *Store) DeleteRun(ctx context.Context, id int64) error {
	if _, err := s.exec(ctx, `DELETE FROM runs WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete run %d: %w", id, err)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func scanRun(sc scanner) (Run, error) {
	var r Run
	var finished sql.NullTime
	err := sc.Scan(&r.ID, &r.Name, &r.Kind, &r.Config, &r.Model, &r.ModelHash, &r.Adapter,
		&r.AdapterHash, &r.Method, &r.Task, &r.Split, &r.Noise, &r.Seed, &r.Asked, &r.Status, &r.CreatedAt, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, ErrNotFound
	}
	if err != nil {
		return Run{}, err
	}
	r.FinishedAt = timeOrZero(finished)
	return r, nil
}

// FileHash returns the hex sha256 of a file, the identity recorded for models
// and adapters (a path says nothing once the file is replaced).
func FileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("store: hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("store: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
