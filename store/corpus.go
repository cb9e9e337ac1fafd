package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// AddCorpusDocs adds documents to a corpus in one transaction, fills in
// their IDs and advances each corpus's fingerprint (see CorpusVersion) in the
// same transaction, so the fingerprint always matches the documents.
func (s *Store) AddCorpusDocs(ctx context.Context, docs []CorpusDoc) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO corpus (collection, title, text) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		versions := map[string]*CorpusVersion{}
		var order []string
		for i := range docs {
			v := versions[docs[i].Corpus]
			if v == nil {
				cur, err := corpusVersion(ctx, tx, docs[i].Corpus)
				if err != nil {
					return err
				}
				v = &cur
				versions[docs[i].Corpus] = v
				order = append(order, docs[i].Corpus)
			}
			res, err := stmt.ExecContext(ctx, docs[i].Corpus, docs[i].Title, docs[i].Text)
			if err != nil {
				return fmt.Errorf("doc %q: %w", docs[i].Title, err)
			}
			if docs[i].ID, err = res.LastInsertId(); err != nil {
				return err
			}
			v.Fingerprint = chainFingerprint(v.Fingerprint, docs[i].Title, docs[i].Text)
			v.Docs++
		}
		for _, c := range order {
			if err := putCorpusVersion(ctx, tx, *versions[c]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add %d corpus docs: %w", len(docs), err)
	}
	return nil
}

// CorpusVersion identifies the content of a corpus.
type CorpusVersion struct {
	Corpus string
	// Fingerprint is a SHA-256 (hex) chained over the corpus's documents in
	// the order they were added: equal fingerprints mean equal content, and
	// adding documents changes it. "" for a corpus with no documents.
	Fingerprint string
	// Docs is the number of documents.
	Docs int
}

// CorpusVersion returns the fingerprint and size of a corpus; a corpus that
// was never indexed has Docs 0 (and no error). A corpus indexed before
// fingerprints existed gets its fingerprint computed and saved here, once.
func (s *Store) CorpusVersion(ctx context.Context, corpus string) (CorpusVersion, error) {
	v := CorpusVersion{Corpus: corpus}
	// A plain read first: every run and served agent request asks, and a
	// write transaction would queue them behind episode writes.
	err := s.db.QueryRowContext(ctx, `SELECT fingerprint, docs FROM corpus_versions WHERE collection = ?`, corpus).Scan(&v.Fingerprint, &v.Docs)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return v, nil
	case err != nil:
		return CorpusVersion{}, fmt.Errorf("store: corpus %s version: %w", corpus, err)
	case v.Fingerprint != "" || v.Docs == 0:
		return v, nil
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if v, err = corpusVersion(ctx, tx, corpus); err != nil || v.Docs == 0 {
			return err
		}
		return putCorpusVersion(ctx, tx, v)
	})
	if err != nil {
		return CorpusVersion{}, fmt.Errorf("store: corpus %s version: %w", corpus, err)
	}
	return v, nil
}

// corpusVersion reads a corpus's version row, folding the fingerprint of a
// pre-fingerprint corpus (an empty one with documents) over its documents in
// insertion order, as AddCorpusDocs would have.
func corpusVersion(ctx context.Context, tx *sql.Tx, corpus string) (CorpusVersion, error) {
	v := CorpusVersion{Corpus: corpus}
	err := tx.QueryRowContext(ctx, `SELECT fingerprint, docs FROM corpus_versions WHERE collection = ?`, corpus).Scan(&v.Fingerprint, &v.Docs)
	if errors.Is(err, sql.ErrNoRows) {
		return v, nil
	}
	if err != nil || v.Fingerprint != "" || v.Docs == 0 {
		return v, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT title, text FROM corpus WHERE collection = ? ORDER BY rowid`, corpus)
	if err != nil {
		return v, err
	}
	defer rows.Close()
	v.Docs = 0
	for rows.Next() {
		var title, text string
		if err := rows.Scan(&title, &text); err != nil {
			return v, err
		}
		v.Fingerprint = chainFingerprint(v.Fingerprint, title, text)
		v.Docs++
	}
	return v, rows.Err()
}

func putCorpusVersion(ctx context.Context, tx *sql.Tx, v CorpusVersion) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO corpus_versions (collection, fingerprint, docs, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (collection) DO UPDATE SET fingerprint = excluded.fingerprint, docs = excluded.docs, updated_at = excluded.updated_at`,
		v.Corpus, v.Fingerprint, v.Docs, time.Now().UTC())
	return err
}

// chainFingerprint is sha256(prev, len(title), title, len(text), text) in hex:
// the lengths keep ("ab", "c") and ("a", "bc") apart.
func chainFingerprint(prev, title, text string) string {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte(prev))
	for _, f := range []string{title, text} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SearchCorpus returns up to k documents of the named corpus ranked by BM25
// against the words of query (any word may match; more and rarer matches rank
// higher). Title matches weigh twice as much as body matches. The query is
// free text: FTS5 operators in it are treated as plain words.
func (s *Store) SearchCorpus(ctx context.Context, corpus, query string, k int) ([]CorpusDoc, error) {
	match := ftsQuery(query)
	if match == "" || k <= 0 {
		return nil, nil
	}
	// bm25() is lower-is-better (negative); Score reports its negation. The
	// weights follow the column order: collection (unindexed), title, text.
	rows, err := s.db.QueryContext(ctx, `SELECT rowid, collection, title, text, -bm25(corpus, 0, 2.0, 1.0) AS score
		FROM corpus WHERE corpus MATCH ? AND collection = ?
		ORDER BY bm25(corpus, 0, 2.0, 1.0) LIMIT ?`, match, corpus, k)
	if err != nil {
		return nil, fmt.Errorf("store: search corpus %s for %q: %w", corpus, query, err)
	}
	defer rows.Close()
	var out []CorpusDoc
	for rows.Next() {
		var d CorpusDoc
		if err := rows.Scan(&d.ID, &d.Corpus, &d.Title, &d.Text, &d.Score); err != nil {
			return nil, fmt.Errorf("store: search corpus %s: %w", corpus, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: search corpus %s: %w", corpus, err)
	}
	return out, nil
}

// CorpusSize returns the number of documents in a corpus.
func (s *Store) CorpusSize(ctx context.Context, corpus string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM corpus WHERE collection = ?`, corpus).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: corpus %s size: %w", corpus, err)
	}
	return n, nil
}

// ftsQuery turns free text into an FTS5 query that ORs the quoted words, so
// quotes, parentheses, AND/NOT/NEAR and colons in an agent's search string
// cannot make a syntax error or change the meaning.
func ftsQuery(q string) string {
	words := strings.FieldsFunc(q, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	for i, w := range words {
		words[i] = `"` + w + `"`
	}
	return strings.Join(words, " OR ")
}
