package store

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// AddCorpusDocs adds documents to their corpora in one transaction, fills in
// their IDs, indexes them in each corpus's own full-text table and advances
// each corpus's fingerprint (see CorpusVersion) in the same transaction, so
// the fingerprint and the index always match the documents. Callers stream a
// large corpus in batches: each committed batch stays, so an interrupted
// indexing keeps what it added.
func (s *Store) AddCorpusDocs(ctx context.Context, docs []CorpusDoc) error {
	return s.AddCorpusDocsFrom(ctx, docs, nil)
}

// AddCorpusDocsFrom is AddCorpusDocs that also records, in the same
// transaction, how far src (a corpus file) has been read when src is not
// nil: a restarted indexing of the file then resumes after exactly the
// records whose documents are in the store.
func (s *Store) AddCorpusDocsFrom(ctx context.Context, docs []CorpusDoc, src *CorpusSource) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if src != nil {
			if err := putCorpusSource(ctx, tx, *src); err != nil {
				return err
			}
		}
		if len(docs) == 0 {
			return nil
		}
		type corpusState struct {
			id      int64
			version CorpusVersion
			index   *sql.Stmt
		}
		var codec textCodec
		insDoc, err := tx.PrepareContext(ctx, `INSERT INTO corpus_docs (corpus_id, title, text) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insDoc.Close()
		states := map[string]*corpusState{}
		var order []string
		for i := range docs {
			st := states[docs[i].Corpus]
			if st == nil {
				id, err := ensureCorpusIndex(ctx, tx, docs[i].Corpus)
				if err != nil {
					return err
				}
				v, err := corpusVersion(ctx, tx, docs[i].Corpus)
				if err != nil {
					return err
				}
				idx, err := tx.PrepareContext(ctx, `INSERT INTO `+ftsTable(id)+` (rowid, title, text) VALUES (?, ?, ?)`)
				if err != nil {
					return err
				}
				defer idx.Close()
				st = &corpusState{id: id, version: v, index: idx}
				states[docs[i].Corpus] = st
				order = append(order, docs[i].Corpus)
			}
			packed, err := codec.pack(docs[i].Text)
			if err != nil {
				return fmt.Errorf("doc %q: %w", docs[i].Title, err)
			}
			res, err := insDoc.ExecContext(ctx, st.id, docs[i].Title, packed)
			if err != nil {
				return fmt.Errorf("doc %q: %w", docs[i].Title, err)
			}
			if docs[i].ID, err = res.LastInsertId(); err != nil {
				return err
			}
			if _, err := st.index.ExecContext(ctx, docs[i].ID, docs[i].Title, indexText(docs[i].Text)); err != nil {
				return fmt.Errorf("index doc %q: %w", docs[i].Title, err)
			}
			st.version.Fingerprint = chainFingerprint(st.version.Fingerprint, docs[i].Title, docs[i].Text)
			st.version.Docs++
		}
		for _, c := range order {
			if err := putCorpusVersion(ctx, tx, states[c].version); err != nil {
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

// ftsTable names the full-text index of the corpus with the given id.
func ftsTable(id int64) string { return "corpus_fts_" + strconv.FormatInt(id, 10) }

// createFTS returns the DDL of a corpus's index: contentless (the text is
// stored once, in corpus_docs, and the index holds only postings and document
// lengths), the porter stemmer as before, and the text column indexed without
// stop words (see indexText). detail stays full: with detail=column the
// postings are a third smaller, but bm25 then re-tokenizes every candidate's
// text to count its terms, which made scoring five times slower (and is
// impossible without stored content).
func createFTS(table string) string {
	return `CREATE VIRTUAL TABLE IF NOT EXISTS ` + table + ` USING fts5(title, text,
		content = '', tokenize = 'porter unicode61')`
}

// indexText is what a document's text column indexes: its words without stop
// words, which searches drop anyway (their postings were about a third of the
// index and the longest lists in it). Titles are indexed whole, so a query of
// stop words only ("The Who") still finds pages by title.
func indexText(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	for _, w := range queryWords(text) {
		if !stopWords[w] {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(w)
		}
	}
	return b.String()
}

// ensureCorpusIndex returns the id of a corpus, creating its row and index if
// it is new, and building the index of a corpus that migration 0005 moved into
// corpus_docs (built = 0) from its documents.
func ensureCorpusIndex(ctx context.Context, tx *sql.Tx, corpus string) (int64, error) {
	var id int64
	var built bool
	err := tx.QueryRowContext(ctx, `SELECT id, built FROM corpus_tables WHERE collection = ?`, corpus).Scan(&id, &built)
	if errors.Is(err, sql.ErrNoRows) {
		res, err := tx.ExecContext(ctx, `INSERT INTO corpus_tables (collection, built) VALUES (?, 1)`, corpus)
		if err != nil {
			return 0, fmt.Errorf("corpus %s: %w", corpus, err)
		}
		if id, err = res.LastInsertId(); err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, createFTS(ftsTable(id))); err != nil {
			return 0, fmt.Errorf("corpus %s: create index: %w", corpus, err)
		}
		return id, nil
	}
	if err != nil || built {
		return id, err
	}
	if err := buildIndex(ctx, tx, id); err != nil {
		return 0, fmt.Errorf("corpus %s: build index: %w", corpus, err)
	}
	return id, nil
}

// buildIndex creates and fills the index of a corpus migrated from schema
// 0004. It reads the corpus into memory before indexing, which is simple and
// fine for the corpora of that schema (it took seconds a search at Wikipedia
// scale, so no store holds a large one).
func buildIndex(ctx context.Context, tx *sql.Tx, id int64) error {
	t := ftsTable(id)
	if _, err := tx.ExecContext(ctx, createFTS(t)); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, title, text FROM corpus_docs WHERE corpus_id = ? ORDER BY id`, id)
	if err != nil {
		return err
	}
	docs, err := scanDocs(rows, false)
	if err != nil {
		return err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO `+t+` (rowid, title, text) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, d := range docs {
		if _, err := ins.ExecContext(ctx, d.ID, d.Title, indexText(d.Text)); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `UPDATE corpus_tables SET built = 1 WHERE id = ?`, id)
	return err
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
	rows, err := tx.QueryContext(ctx, `SELECT d.title, d.text FROM corpus_docs d JOIN corpus_tables t ON t.id = d.corpus_id
		WHERE t.collection = ? ORDER BY d.id`, corpus)
	if err != nil {
		return v, err
	}
	defer rows.Close()
	v.Docs = 0
	for rows.Next() {
		var title string
		var packed any
		if err := rows.Scan(&title, &packed); err != nil {
			return v, err
		}
		text, err := unpackText(packed)
		if err != nil {
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

// Search planning. A question such as "Who was the first president of the
// country that ..." used to become an OR of every word, so FTS5 ranked every
// document containing "the", at about a microsecond each. Now stop words are
// dropped and each remaining term's document frequency is counted (counting
// is far cheaper than scoring); the candidates are the documents of the
// rarest terms, taken while their summed frequency stays within scoreBudget,
// and bm25 ranks only those, over all the query's terms (see planMatch). When
// even the rarest term is over the budget, the terms are AND-ed instead.
const (
	// scoreBudget bounds the documents a search scores with bm25.
	scoreBudget = 10000
	// dfCap bounds the count that orders terms that are all over the
	// budget: beyond it a term is just common, and counting further would
	// cost more than it tells.
	dfCap = 100000
	// titleWords is the longest query looked up as an exact page title.
	titleWords = 12
	// titleCandidates bounds the documents checked for an exact title match.
	titleCandidates = 4096
)

// stopWords are English function words dropped from searches unless the
// query has nothing else. A fixed list: a corpus-specific one would make the
// same query mean different things in different corpora.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are as at be
		because been before being below between both but by can could did do does doing down during each
		few for from further had has have having he her here hers herself him himself his how i if in into
		is it its itself just me more most my myself no nor not of off on once only or other our ours
		ourselves out over own same she should so some such than that the their theirs them themselves
		then there these they this those through to too under until up very was we were what when where
		which while who whom whose why will with would you your yours yourself yourselves also may might
		must shall us upon`) {
		m[w] = true
	}
	return m
}()

// SearchCorpus returns up to k documents of the named corpus for a free-text
// query, best first. A document whose title is the query (ignoring case and
// surrounding space) comes first, as a page named by search[entity] should;
// the rest are ranked by BM25 over a bounded set of candidates (see scoreBudget),
// stop words dropped unless the query is only stop words, title matches
// weighing twice body matches. Score is the BM25 score (higher is better); an
// exact-title document scores at least the best BM25 score, so scores never
// increase down the list. FTS5 operators in the query are plain words.
func (s *Store) SearchCorpus(ctx context.Context, corpus, query string, k int) ([]CorpusDoc, error) {
	words := queryWords(query)
	if len(words) == 0 || k <= 0 {
		return nil, nil
	}
	out, err := s.searchCorpus(ctx, corpus, query, words, k, scoreBudget)
	if err != nil {
		return nil, fmt.Errorf("store: search corpus %s for %q: %w", corpus, query, err)
	}
	return out, nil
}

// searchCorpus is SearchCorpus with the scoring budget as a parameter, so
// tests can exercise the budget's limits on a small corpus.
func (s *Store) searchCorpus(ctx context.Context, corpus, query string, words []string, k, budget int) ([]CorpusDoc, error) {
	var id int64
	var built bool
	// A plain read first: the write transaction below is needed only once,
	// for a corpus migrated from the single-table schema.
	err := s.db.QueryRowContext(ctx, `SELECT id, built FROM corpus_tables WHERE collection = ?`, corpus).Scan(&id, &built)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !built {
		if err := s.inTx(ctx, func(tx *sql.Tx) error {
			_, err := ensureCorpusIndex(ctx, tx, corpus)
			return err
		}); err != nil {
			return nil, err
		}
	}
	t := ftsTable(id)
	exact, err := s.titleMatches(ctx, t, query, words, k)
	if err != nil {
		return nil, err
	}
	p, err := s.planMatch(ctx, t, words, budget)
	if err != nil {
		return nil, err
	}
	ranked, err := s.rank(ctx, t, p, k)
	if err != nil {
		return nil, err
	}
	if len(exact) == 0 {
		for i := range ranked {
			ranked[i].Corpus = corpus
		}
		return ranked, nil
	}
	best := 0.0
	if len(ranked) > 0 {
		best = ranked[0].Score
	}
	seen := map[int64]bool{}
	var out []CorpusDoc
	for _, d := range exact {
		d.Score = best
		for _, r := range ranked {
			if r.ID == d.ID {
				d.Score = max(best, r.Score)
			}
		}
		seen[d.ID] = true
		out = append(out, d)
	}
	for _, r := range ranked {
		if !seen[r.ID] && len(out) < k {
			out = append(out, r)
		}
	}
	for i := range out {
		out[i].Corpus = corpus
	}
	return out, nil
}

// titleMatches returns up to k documents titled exactly query (ASCII case
// ignored), found among the documents whose title holds every query word.
func (s *Store) titleMatches(ctx context.Context, t, query string, words []string, k int) ([]CorpusDoc, error) {
	if len(words) > titleWords {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT d.id, d.title, d.text
		FROM (SELECT rowid AS id FROM `+t+` WHERE `+t+` MATCH ? LIMIT ?) c JOIN corpus_docs d ON d.id = c.id
		WHERE trim(d.title) = ? COLLATE NOCASE ORDER BY d.id LIMIT ?`,
		"{title} : ("+quoteTerms(words, " AND ")+")", titleCandidates, strings.TrimSpace(query), k)
	if err != nil {
		return nil, fmt.Errorf("title match: %w", err)
	}
	return scanDocs(rows, false)
}

// planMatch chooses what to score, at most about budget documents (see
// scoreBudget): the empty plan when no query word is in the corpus.
func (s *Store) planMatch(ctx context.Context, t string, words []string, budget int) (plan, error) {
	// A word given twice counts twice, as it did when every word was an OR
	// term: bm25 sums over the query's phrases.
	var terms []string
	times := map[string]int{}
	for _, w := range words {
		if !stopWords[w] {
			w = quoteTerms([]string{w}, "")
			if times[w] == 0 {
				terms = append(terms, w)
			}
			times[w]++
		}
	}
	if len(terms) == 0 {
		// Only stop words, which only titles index.
		for _, w := range words {
			w = "{title} : " + quoteTerms([]string{w}, "")
			if times[w] == 0 {
				terms = append(terms, w)
			}
			times[w]++
		}
	}
	type termDF struct {
		term string
		df   int
	}
	dfs := make([]termDF, 0, len(terms))
	for _, w := range terms {
		// Counting stops past the budget: beyond it a term cannot be a
		// candidate term, and counting on would cost as much as scoring.
		df, err := s.countMatches(ctx, t, w, budget+1)
		if err != nil {
			return plan{}, err
		}
		if df > 0 {
			dfs = append(dfs, termDF{w, df})
		}
	}
	or := func(ts []termDF) string {
		var q []string
		for _, d := range ts {
			for range times[d.term] {
				q = append(q, d.term)
			}
		}
		return strings.Join(q, " OR ")
	}
	if len(dfs) == 0 {
		return plan{}, nil
	}
	sort.SliceStable(dfs, func(i, j int) bool { return dfs[i].df < dfs[j].df })
	if dfs[0].df <= budget {
		// The rarest terms whose documents fit the budget, OR-ed.
		n, sum := 1, dfs[0].df
		for n < len(dfs) && sum+dfs[n].df <= budget {
			sum += dfs[n].df
			n++
		}
		if n == len(dfs) {
			return plan{match: or(dfs)}, nil
		}
		return plan{match: or(dfs[:n]), also: or(dfs[n:])}, nil
	}
	// Every term is common: AND them, rarest first, until the documents
	// holding them all fit the budget; a term that would leave none is
	// skipped (it is the OR-ness of the old search that such a query keeps).
	// Which is rarest takes a longer count, bounded by dfCap.
	for i := range dfs {
		var err error
		if dfs[i].df, err = s.countMatches(ctx, t, dfs[i].term, dfCap); err != nil {
			return plan{}, err
		}
	}
	sort.SliceStable(dfs, func(i, j int) bool { return dfs[i].df < dfs[j].df })
	match := dfs[0].term
	for _, d := range dfs[1:] {
		next := match + " AND " + d.term
		n, err := s.countMatches(ctx, t, next, budget+1)
		if err != nil {
			return plan{}, err
		}
		if n == 0 {
			continue
		}
		match = next
		if n <= budget {
			break
		}
	}
	return plan{match: match}, nil
}

// plan is what a search scores: the documents matching match, ranked by bm25
// over match's terms and also's (see rank). also is "" or an OR of terms.
type plan struct {
	match, also string
}

// rank returns the k best documents of a plan. With also set, the candidates
// are those of match, but also's terms count in their scores as if the query
// were "match OR also". FTS5 has no optional operator, so two rankings are
// merged: "(match) AND (also)" scores the candidates holding also's terms
// over both (FTS5 seeks also's long lists to the candidates rather than
// reading them), and "match" scores the others (those without also's terms,
// for which it is their full score). The merge is exact: a candidate with
// also's terms that misses the first top k has a true score below its k-th,
// and its score in the second ranking is lower still.
func (s *Store) rank(ctx context.Context, t string, p plan, k int) ([]CorpusDoc, error) {
	if p.match == "" {
		return nil, nil
	}
	if p.also == "" {
		return s.bm25(ctx, t, p.match, k)
	}
	both, err := s.bm25(ctx, t, "("+p.match+") AND ("+p.also+")", k)
	if err != nil {
		return nil, err
	}
	some, err := s.bm25(ctx, t, p.match, k)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	for _, d := range both {
		seen[d.ID] = true
	}
	for _, d := range some {
		if !seen[d.ID] {
			both = append(both, d)
		}
	}
	sort.SliceStable(both, func(i, j int) bool { return both[i].Score > both[j].Score })
	return both[:min(k, len(both))], nil
}

// countMatches counts the documents matching an FTS5 query, up to limit.
func (s *Store) countMatches(ctx context.Context, t, match string, limit int) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+t+` WHERE `+t+` MATCH ? LIMIT ?)`, match, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", match, err)
	}
	return n, nil
}

// bm25 returns the k best documents for an FTS5 query. The ranking runs on
// rowids alone and only the k winners are read from corpus_docs.
func (s *Store) bm25(ctx context.Context, t, match string, k int) ([]CorpusDoc, error) {
	// bm25() is lower-is-better (negative); Score reports its negation. The
	// weights follow the column order: title, text.
	rows, err := s.db.QueryContext(ctx, `SELECT d.id, d.title, d.text, r.score
		FROM (SELECT rowid AS id, -bm25(`+t+`, 2.0, 1.0) AS score FROM `+t+` WHERE `+t+` MATCH ?
			ORDER BY bm25(`+t+`, 2.0, 1.0) LIMIT ?) r
		JOIN corpus_docs d ON d.id = r.id ORDER BY r.score DESC`, match, k)
	if err != nil {
		return nil, fmt.Errorf("rank: %w", err)
	}
	return scanDocs(rows, true)
}

// textCodec packs texts for corpus_docs (see textFlateV1); it reuses one
// compressor, so it serves one goroutine (one AddCorpusDocs call).
type textCodec struct {
	w   *flate.Writer
	buf bytes.Buffer
}

// pack returns the stored form of text: compressed, or the text itself when
// compression would not make it shorter.
func (c *textCodec) pack(text string) (any, error) {
	c.buf.Reset()
	c.buf.WriteByte(textFlateV1)
	if c.w == nil {
		w, err := flate.NewWriterDict(&c.buf, flate.BestCompression, []byte(textDictV1))
		if err != nil {
			return nil, err
		}
		c.w = w
	} else {
		c.w.Reset(&c.buf)
	}
	if _, err := c.w.Write([]byte(text)); err != nil {
		return nil, fmt.Errorf("compress text: %w", err)
	}
	if err := c.w.Close(); err != nil {
		return nil, fmt.Errorf("compress text: %w", err)
	}
	if c.buf.Len() >= len(text) {
		return text, nil
	}
	return bytes.Clone(c.buf.Bytes()), nil
}

// unpackText returns the text of a stored corpus_docs.text value.
func unpackText(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []byte:
		if len(v) == 0 || v[0] != textFlateV1 {
			return "", fmt.Errorf("document text in an unknown format (a newer fireact wrote it?)")
		}
		r := flate.NewReaderDict(bytes.NewReader(v[1:]), []byte(textDictV1))
		b, err := io.ReadAll(r)
		if err != nil {
			return "", fmt.Errorf("decompress text: %w", err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("document text of type %T", v)
}

// scanDocs reads (id, title, text[, score]) rows.
func scanDocs(rows *sql.Rows, score bool) ([]CorpusDoc, error) {
	defer rows.Close()
	var out []CorpusDoc
	for rows.Next() {
		var d CorpusDoc
		var packed any
		dest := []any{&d.ID, &d.Title, &packed}
		if score {
			dest = append(dest, &d.Score)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		var err error
		if d.Text, err = unpackText(packed); err != nil {
			return nil, fmt.Errorf("doc %d: %w", d.ID, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// CorpusSize returns the number of documents in a corpus.
func (s *Store) CorpusSize(ctx context.Context, corpus string) (int, error) {
	v, err := s.CorpusVersion(ctx, corpus)
	if err != nil {
		return 0, fmt.Errorf("store: corpus %s size: %w", corpus, err)
	}
	return v.Docs, nil
}

// queryWords splits free text into lower-case words (runs of letters and
// digits), so quotes, parentheses, AND/NOT/NEAR and colons in an agent's
// search string cannot make a syntax error or change the meaning.
func queryWords(q string) []string {
	words := strings.FieldsFunc(q, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	for i, w := range words {
		words[i] = strings.ToLower(w)
	}
	return words
}

// quoteTerms joins words as FTS5 strings with sep (" OR ", " AND ").
func quoteTerms(words []string, sep string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = `"` + w + `"`
	}
	return strings.Join(q, sep)
}

// Document texts are stored DEFLATE-compressed with a preset dictionary of
// common encyclopedia words: abstracts are too short for DEFLATE to find much
// repetition on its own, and the text is most of a corpus's bytes (the goal is
// a store at most 1.5 times the raw text, index included). A text stored as
// a BLOB starts with a format byte; a TEXT value (a document migrated from
// schema 0004, or one that compression would not shrink) is the text itself.
const textFlateV1 = 1

// textDictV1 is the preset dictionary of format 1. It must never change:
// stored texts need it to decompress. DEFLATE reaches its end most cheaply,
// so the most frequent words come last.
const textDictV1 = ` album single song band singer musician record label studio released debut episode
season series television show station channel network newspaper magazine published publisher novel
book author writer poet journalist painter artist actor actress director producer composer film films
movie starring directed written produced football basketball baseball hockey player team club league
championship cup tournament season coach professional national international olympic university college
school institute academy church cathedral temple museum park river lake mountain island village town
city county district province region state country capital population census located situated north
south east west northern southern eastern western central area part member members family species genus
known best also called named founded established formed born died married early life career history
war army navy air force battle general president minister government political party election elected
served house senate parliament council king queen prince emperor first second third new old century
years year since until during between after before from with which who that this their there these
American British English French German Italian Spanish Japanese Chinese Indian Australian Canadian
United States Kingdom York London California Texas the United States one of the is a was an American
as well as such as in the of the and the to the for the on the at the by the from the with the is an
it is he was she was they were has been have been which is that is who was is the was the in which
of his of her and his and her was born in is located in is a former is an American`
