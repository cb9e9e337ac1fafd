package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CorpusSource is how far one corpus file has been indexed.
type CorpusSource struct {
	Corpus string
	// Source is the file (an absolute path); Identity names its content, so
	// that a file changed since is not taken for the one read before.
	Source, Identity string
	// Records is the number of records read from the file: Docs added and
	// Skipped malformed ones. Done is set when the file was read to its end.
	Records, Docs, Skipped int
	Done                   bool
}

// CorpusSourceProgress returns the recorded progress of a corpus file, and
// false when it was never indexed into that corpus.
func (s *Store) CorpusSourceProgress(ctx context.Context, corpus, source string) (CorpusSource, bool, error) {
	c := CorpusSource{Corpus: corpus, Source: source}
	err := s.db.QueryRowContext(ctx, `SELECT identity, records, docs, skipped, done FROM corpus_sources
		WHERE collection = ? AND source = ?`, corpus, source).Scan(&c.Identity, &c.Records, &c.Docs, &c.Skipped, &c.Done)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("store: corpus %q source %s: %w", corpus, source, err)
	}
	return c, true, nil
}

// SetCorpusSource records a corpus file's progress (for a step that adds no
// document: the end of the file, or the start of a changed one).
func (s *Store) SetCorpusSource(ctx context.Context, src CorpusSource) error {
	return s.AddCorpusDocsFrom(ctx, nil, &src)
}

func putCorpusSource(ctx context.Context, tx *sql.Tx, c CorpusSource) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO corpus_sources (collection, source, identity, records, docs, skipped, done, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (collection, source) DO UPDATE SET identity = excluded.identity, records = excluded.records,
			docs = excluded.docs, skipped = excluded.skipped, done = excluded.done, updated_at = excluded.updated_at`,
		c.Corpus, c.Source, c.Identity, c.Records, c.Docs, c.Skipped, c.Done, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("record progress of %s: %w", c.Source, err)
	}
	return nil
}
