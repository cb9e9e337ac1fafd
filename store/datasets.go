package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CreateDataset records a dataset with its episodes in the given order and
// returns its id.
func (s *Store) CreateDataset(ctx context.Context, d *Dataset, episodeIDs []int64) (int64, error) {
	var id int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = createDataset(ctx, tx, d, episodeIDs)
		return err
	})
	return id, err
}

func createDataset(ctx context.Context, q querier, d *Dataset, episodeIDs []int64) (int64, error) {
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now().UTC()
	}
	res, err := q.ExecContext(ctx, `INSERT INTO datasets (name, recipe, created_at) VALUES (?, ?, ?)`,
		d.Name, jsonOrEmpty(d.Recipe), d.CreatedAt.UTC())
	if err != nil {
		return 0, fmt.Errorf("store: create dataset %q: %w", d.Name, err)
	}
	if d.ID, err = res.LastInsertId(); err != nil {
		return 0, fmt.Errorf("store: create dataset %q: %w", d.Name, err)
	}
	stmt, err := q.PrepareContext(ctx, `INSERT INTO dataset_episodes (dataset_id, position, episode_id) VALUES (?, ?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("store: create dataset %q: %w", d.Name, err)
	}
	defer stmt.Close()
	for i, e := range episodeIDs {
		if _, err := stmt.ExecContext(ctx, d.ID, i, e); err != nil {
			return 0, fmt.Errorf("store: create dataset %q: episode %d: %w", d.Name, e, err)
		}
	}
	d.Size = len(episodeIDs)
	return d.ID, nil
}

const datasetColumns = `d.id, d.name, d.recipe, d.created_at,
	(SELECT count(*) FROM dataset_episodes de WHERE de.dataset_id = d.id)`

func scanDataset(sc scanner) (Dataset, error) {
	var d Dataset
	err := sc.Scan(&d.ID, &d.Name, &d.Recipe, &d.CreatedAt, &d.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return Dataset{}, ErrNotFound
	}
	return d, err
}

// Dataset returns the dataset with the given id, or ErrNotFound.
func (s *Store) Dataset(ctx context.Context, id int64) (Dataset, error) {
	d, err := scanDataset(s.db.QueryRowContext(ctx, `SELECT `+datasetColumns+` FROM datasets d WHERE d.id = ?`, id))
	if err != nil {
		return Dataset{}, fmt.Errorf("store: dataset %d: %w", id, err)
	}
	return d, nil
}

// FreeDatasetName returns name if no dataset has it, else name#N for the first
// N >= 2 that is free, so repeated imports or builds never collide.
func (s *Store) FreeDatasetName(ctx context.Context, name string) (string, error) {
	cand := name
	for n := 2; ; n++ {
		_, err := s.DatasetByName(ctx, cand)
		if errors.Is(err, ErrNotFound) {
			return cand, nil
		}
		if err != nil {
			return "", err
		}
		cand = fmt.Sprintf("%s#%d", name, n)
	}
}

// DatasetByName returns the dataset with the given name, or ErrNotFound.
func (s *Store) DatasetByName(ctx context.Context, name string) (Dataset, error) {
	d, err := scanDataset(s.db.QueryRowContext(ctx, `SELECT `+datasetColumns+` FROM datasets d WHERE d.name = ?`, name))
	if err != nil {
		return Dataset{}, fmt.Errorf("store: dataset %q: %w", name, err)
	}
	return d, nil
}

// ListDatasets returns all datasets, newest first.
func (s *Store) ListDatasets(ctx context.Context) ([]Dataset, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+datasetColumns+` FROM datasets d ORDER BY d.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("store: list datasets: %w", err)
	}
	defer rows.Close()
	var out []Dataset
	for rows.Next() {
		d, err := scanDataset(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list datasets: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list datasets: %w", err)
	}
	return out, nil
}

// DatasetEpisodeIDs returns a dataset's episode ids in dataset order.
func (s *Store) DatasetEpisodeIDs(ctx context.Context, datasetID int64) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT episode_id FROM dataset_episodes WHERE dataset_id = ? ORDER BY position`, datasetID)
	if err != nil {
		return nil, fmt.Errorf("store: episodes of dataset %d: %w", datasetID, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: episodes of dataset %d: %w", datasetID, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: episodes of dataset %d: %w", datasetID, err)
	}
	return out, nil
}
