package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode"
)

// synthCorpus makes a deterministic synthetic corpus shaped like Wikipedia
// abstracts: about 300 characters each, a Zipfian content vocabulary
// (Zipf-Mandelbrot, P(rank k) ∝ (k+50)^-1.07, so the most frequent content
// word is in about a tenth of the documents, as "American" is in
// Wikipedia's), about
// 40% stop words, titles that are entity names ("First Last", capitalised
// content words, a few with stop words), the text opening with the title and
// now and then naming another page, as abstracts do. Documents are made on
// demand from (seed, index), so a million of them never sit in memory.
type synthCorpus struct {
	seed   uint64
	vocab  []string // content words, most frequent first
	first  []string // first names
	last   []string // last names
	stops  []string // stop words, most frequent first
	zipfV  *rand.Zipf
	zipfS  *rand.Zipf
	zipfL  *rand.Zipf
	rng    *rand.Rand
	titles []string // titles[i] of doc i, kept for the cross references
}

// synthStops are the stop words the generator writes (a subset of the
// store's list, so question queries exercise dropping them).
var synthStops = []string{"the", "of", "and", "in", "a", "to", "was", "is", "for", "on", "as", "by",
	"with", "he", "that", "at", "from", "his", "it", "an", "were", "are", "which", "this", "also",
	"be", "has", "or", "had", "first", "its", "their", "after", "new", "who", "they", "been", "her",
	"she", "but", "not", "one", "two", "all", "during", "there", "into", "most", "more", "other"}

// newSynthCorpus builds the vocabularies for n documents.
func newSynthCorpus(seed uint64, n int) *synthCorpus {
	r := rand.New(rand.NewPCG(seed, 1))
	c := &synthCorpus{seed: seed, stops: synthStops}
	seen := map[string]bool{}
	for _, s := range synthStops {
		seen[s] = true
	}
	// Vocabulary and name pools grow with the corpus as Wikipedia's do.
	nv := max(20000, n/10)
	c.vocab = pseudoWords(r, nv, seen)
	c.first = pseudoWords(r, max(2000, n/200), seen)
	c.last = pseudoWords(r, max(10000, n/8), seen)
	c.rng = rand.New(rand.NewPCG(seed, 2))
	c.zipfV = rand.NewZipf(c.rng, 1.07, 50, uint64(len(c.vocab)-1))
	c.zipfS = rand.NewZipf(c.rng, 1.2, 1, uint64(len(c.stops)-1))
	c.zipfL = rand.NewZipf(c.rng, 1.01, 8, uint64(len(c.last)-1))
	c.titles = make([]string, n)
	for i := range c.titles {
		c.titles[i] = c.title()
	}
	return c
}

var syllables = strings.Fields("ka lo mi ra ten vo zu bel dor fin gra hu jor ke lin mar nor pe qui ros sa tor ul vin wen xa yo zel an bri cor du el fa gi ho ir jun kro lu mo ne ob pra ru si tu ur vek")

// pseudoWords returns n distinct made-up words (letters only) not in seen.
func pseudoWords(r *rand.Rand, n int, seen map[string]bool) []string {
	out := make([]string, 0, n)
	var b strings.Builder
	for len(out) < n {
		b.Reset()
		for k := 2 + r.IntN(3); k > 0; k-- {
			b.WriteString(syllables[r.IntN(len(syllables))])
		}
		w := b.String()
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func capitalize(w string) string {
	r := []rune(w)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

func (c *synthCorpus) title() string {
	r := c.rng
	switch p := r.IntN(10); {
	case p < 7:
		return capitalize(c.first[r.IntN(len(c.first))]) + " " + capitalize(c.last[c.zipfL.Uint64()])
	case p < 9:
		return capitalize(c.vocab[r.IntN(len(c.vocab))]) + " " + capitalize(c.vocab[c.zipfV.Uint64()])
	default:
		return "The " + capitalize(c.vocab[r.IntN(len(c.vocab))]) + " of " + capitalize(c.last[c.zipfL.Uint64()])
	}
}

// doc returns document i: its text is made from a generator seeded by i, so
// the same index always gives the same document.
func (c *synthCorpus) doc(i int) CorpusDoc {
	r := rand.New(rand.NewPCG(c.seed^uint64(i)*0x9e3779b97f4a7c15, 3))
	zv := rand.NewZipf(r, 1.07, 50, uint64(len(c.vocab)-1))
	zs := rand.NewZipf(r, 1.2, 1, uint64(len(c.stops)-1))
	var b strings.Builder
	b.WriteString(c.titles[i])
	b.WriteString(" is")
	target := 200 + r.IntN(200)
	for b.Len() < target {
		b.WriteByte(' ')
		switch p := r.IntN(100); {
		case p < 40:
			b.WriteString(c.stops[zs.Uint64()])
		case p < 42:
			b.WriteString(c.titles[r.IntN(len(c.titles))])
		default:
			b.WriteString(c.vocab[zv.Uint64()])
		}
		if r.IntN(12) == 0 {
			b.WriteString(".")
		}
	}
	b.WriteString(".")
	return CorpusDoc{Title: c.titles[i], Text: b.String()}
}

// question makes a question-style query for document i: a wh-word and stop
// words around three content words of the document's text and, half of the
// time, one word of its title ("What was the kalo of the minra that vobel
// in Tenvo?"). Document i is the gold paragraph.
func (c *synthCorpus) question(i int, r *rand.Rand) string {
	d := c.doc(i)
	stop := map[string]bool{}
	for _, s := range c.stops {
		stop[s] = true
	}
	var content []string
	for _, w := range strings.Fields(strings.TrimPrefix(d.Text, d.Title)) {
		w = strings.Trim(w, ".")
		if w != "" && !stop[w] && w == strings.ToLower(w) {
			content = append(content, w)
		}
	}
	pick := func() string {
		if len(content) == 0 {
			return c.vocab[r.IntN(len(c.vocab))]
		}
		return content[r.IntN(len(content))]
	}
	wh := []string{"What", "Who", "Which", "When", "Where", "How"}[r.IntN(6)]
	q := fmt.Sprintf("%s was the %s of the %s that %s", wh, pick(), pick(), pick())
	if r.IntN(2) == 0 {
		tw := strings.Fields(d.Title)
		q += " in " + tw[len(tw)-1]
	}
	return q + "?"
}

// legacyFTSQuery is the query builder of the single-table store (schema
// 0001-0004): every word an OR term.
func legacyFTSQuery(q string) string {
	words := strings.FieldsFunc(q, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	for i, w := range words {
		words[i] = `"` + w + `"`
	}
	return strings.Join(words, " OR ")
}

// legacyCorpus is the single FTS5 table of schema 0001 with its insert and
// query path, kept as the benchmark's and the ranking tests' baseline.
type legacyCorpus struct{ db *sql.DB }

func openLegacyCorpus(ctx context.Context, path string) (*legacyCorpus, error) {
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE VIRTUAL TABLE IF NOT EXISTS corpus USING fts5(
		collection UNINDEXED, title, text, tokenize = 'porter unicode61')`); err != nil {
		db.Close()
		return nil, err
	}
	return &legacyCorpus{db: db}, nil
}

func (l *legacyCorpus) add(ctx context.Context, docs []CorpusDoc) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO corpus (collection, title, text) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range docs {
		res, err := stmt.ExecContext(ctx, docs[i].Corpus, docs[i].Title, docs[i].Text)
		if err != nil {
			return err
		}
		if docs[i].ID, err = res.LastInsertId(); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (l *legacyCorpus) search(ctx context.Context, corpus, query string, k int) ([]CorpusDoc, error) {
	match := legacyFTSQuery(query)
	if match == "" || k <= 0 {
		return nil, nil
	}
	rows, err := l.db.QueryContext(ctx, `SELECT rowid, collection, title, text, -bm25(corpus, 0, 2.0, 1.0) AS score
		FROM corpus WHERE corpus MATCH ? AND collection = ?
		ORDER BY bm25(corpus, 0, 2.0, 1.0) LIMIT ?`, match, corpus, k)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []CorpusDoc
	for rows.Next() {
		var d CorpusDoc
		if err := rows.Scan(&d.ID, &d.Corpus, &d.Title, &d.Text, &d.Score); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
