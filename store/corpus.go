package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode"
)

// AddCorpusDocs adds documents to a corpus in one transaction and fills in
// their IDs.
func (s *Store) AddCorpusDocs(ctx context.Context, docs []CorpusDoc) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO corpus (collection, title, text) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range docs {
			res, err := stmt.ExecContext(ctx, docs[i].Corpus, docs[i].Title, docs[i].Text)
			if err != nil {
				return fmt.Errorf("doc %q: %w", docs[i].Title, err)
			}
			if docs[i].ID, err = res.LastInsertId(); err != nil {
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
