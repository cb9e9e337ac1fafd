package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures under testdata are made by testdata/make_corpus_fixtures.py in
// the real layouts: HotpotQA's abstracts dump (a tree of bz2 files of JSON
// lines with all the dump's fields) and BEIR's corpus.jsonl.
const dumpDir = "testdata/hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts"

func TestIndexHotpotQADump(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var warn bytes.Buffer
	st, err := Index(ctx, s, []string{dumpDir}, IndexOptions{Corpus: "wiki", Warn: &warn})
	if err != nil {
		t.Fatalf("Index: %v (warnings %s)", err, warn.String())
	}
	// 5 pages with text in 3 files; the disambiguation page has an empty
	// abstract and is counted, not indexed.
	if st.Docs != 4 || st.Files != 3 || st.Empty != 1 || st.Malformed != 0 || st.Formats[CorpusFormatHotpotQA] != 3 {
		t.Fatalf("stats = %+v", st)
	}
	if warn.Len() != 0 {
		t.Fatalf("warnings on a clean dump: %s", warn.String())
	}
	if v, err := s.CorpusVersion(ctx, "wiki"); err != nil || v.Docs != 4 {
		t.Fatalf("corpus version = %+v, %v", v, err)
	}
	docs, err := s.SearchCorpus(ctx, "wiki", "Wolfgang Amadeus Mozart", 1)
	if err != nil || len(docs) != 1 {
		t.Fatalf("search = %v, %v", docs, err)
	}
	// The sentences are joined as they are (each after the first carries its
	// space), and the plain text is indexed, not text_with_links.
	want := "Wolfgang Amadeus Mozart was a composer of the Classical period. He was born in Salzburg. He wrote more than 800 works."
	if docs[0].Title != "Wolfgang Amadeus Mozart" || docs[0].Text != want {
		t.Fatalf("doc = %q / %q, want %q", docs[0].Title, docs[0].Text, want)
	}
	// A single bz2 file of the dump indexes on its own too (format by content).
	s2 := newStore(t)
	if st, err := Index(ctx, s2, []string{filepath.Join(dumpDir, "AB", "wiki_00.bz2")}, IndexOptions{Corpus: "w"}); err != nil || st.Docs != 1 {
		t.Fatalf("one bz2 file: %+v, %v", st, err)
	}
}

func TestIndexBEIRAndRows(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var warn bytes.Buffer
	st, err := Index(ctx, s, []string{"testdata/beir/corpus.jsonl"}, IndexOptions{Corpus: "beir", Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	if st.Docs != 3 || st.Malformed != 1 || st.Formats[CorpusFormatBEIR] != 1 {
		t.Fatalf("stats = %+v", st)
	}
	if got := warn.String(); got != "testdata/beir/corpus.jsonl:4: field \"text\" is not a string: 7 (skipped)\n" {
		t.Fatalf("warnings = %q", got)
	}
	if docs, _ := s.SearchCorpus(ctx, "beir", "passage without a title", 1); len(docs) != 1 || docs[0].Title != "" {
		t.Fatalf("untitled BEIR passage: %+v", docs)
	}

	// fireact's own rows, as JSON lines and as one array; a row without text
	// is counted as empty, a row whose text is not a string is malformed.
	dir := t.TempDir()
	lines := filepath.Join(dir, "wiki.jsonl")
	os.WriteFile(lines, []byte("{\"title\": \"A\", \"text\": \"Alpha text.\"}\n\n{\"title\": \"B\", \"text\": \"\"}\n{\"title\": \"C\", \"text\": [\"x\"]}\n"), 0o644)
	arr := filepath.Join(dir, "wiki.json")
	os.WriteFile(arr, []byte("\ufeff[{\"title\": \"D\", \"text\": \"Delta.\"}, {\"title\": 5, \"text\": \"E\"}]"), 0o644)
	warn.Reset()
	st, err = Index(ctx, s, []string{lines, arr}, IndexOptions{Corpus: "rows", Format: CorpusFormatRows, Warn: &warn})
	if err != nil {
		t.Fatal(err)
	}
	if st.Docs != 2 || st.Empty != 1 || st.Malformed != 2 {
		t.Fatalf("rows stats = %+v (warnings %s)", st, warn.String())
	}
	for _, w := range []string{lines + ":4: field \"text\" is not a string: [\"x\"] (skipped)", arr + ":2: field \"title\" is not a string: 5 (skipped)"} {
		if !strings.Contains(warn.String(), w) {
			t.Errorf("warnings lack %q:\n%s", w, warn.String())
		}
	}
}

// TestIndexMalformed: every malformed line is reported with its file and
// line and skipped, the good ones are indexed, and a file of a dump with
// nothing but malformed lines makes Index fail after indexing the rest.
func TestIndexMalformed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var warn bytes.Buffer
	bad := "testdata/bad-hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts"
	st, err := Index(ctx, s, []string{bad}, IndexOptions{Corpus: "wiki", Warn: &warn})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "AB", "wiki_00.bz2")+": nothing indexed (2 malformed lines)") {
		t.Fatalf("Index error = %v", err)
	}
	if st.Docs != 1 || st.Malformed != 6 {
		t.Fatalf("stats = %+v", st)
	}
	aa, ab := filepath.Join(bad, "AA", "wiki_00.bz2"), filepath.Join(bad, "AB", "wiki_00.bz2")
	for _, w := range []string{
		aa + ":2: invalid JSON at byte ",
		aa + ":3: field \"text\" is not a list of sentences: \"a string, not sentences\" (skipped)",
		aa + ":4: field \"text\" is a list of paragraphs: this is the full processed dump, index the abstracts dump instead (skipped)",
		aa + ":5: no \"title\" (HotpotQA abstracts have one per page) (skipped)",
		ab + ":1: invalid JSON at byte 2",
		ab + ":2: not a JSON object: [1, 2, 3] (skipped)",
	} {
		if !strings.Contains(warn.String(), w) {
			t.Errorf("warnings lack %q:\n%s", w, warn.String())
		}
	}
	// The good line of the bad dump was indexed all the same.
	if v, _ := s.CorpusVersion(ctx, "wiki"); v.Docs != 1 {
		t.Fatalf("corpus holds %d docs, want 1", v.Docs)
	}

	// A file that adds nothing is an error; so are a missing file, an unknown
	// format and a JSON array under a JSON-lines format.
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, []byte("\n\n"), 0o644)
	if _, err := Index(ctx, s, []string{empty}, IndexOptions{Corpus: "x"}); err == nil || !strings.Contains(err.Error(), empty+": nothing indexed") {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := Index(ctx, s, []string{filepath.Join(dir, "none.jsonl")}, IndexOptions{Corpus: "x"}); err == nil {
		t.Fatal("missing file indexed")
	}
	if _, err := Index(ctx, s, []string{empty}, IndexOptions{Corpus: "x", Format: "csv"}); err == nil || !strings.Contains(err.Error(), `unknown format "csv"`) {
		t.Fatalf("unknown format: %v", err)
	}
	arr := filepath.Join(dir, "a.json")
	os.WriteFile(arr, []byte(`[{"_id": "1", "title": "T", "text": "x"}]`), 0o644)
	if _, err := Index(ctx, s, []string{arr}, IndexOptions{Corpus: "x", Format: CorpusFormatBEIR}); err == nil || !strings.Contains(err.Error(), "JSON array") {
		t.Fatalf("array as beir: %v", err)
	}
	// A truncated bz2 file fails with its name.
	raw, err := os.ReadFile(filepath.Join(dumpDir, "AA", "wiki_01.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.bz2")
	os.WriteFile(cut, raw[:len(raw)/2], 0o644)
	if _, err := Index(ctx, s, []string{cut}, IndexOptions{Corpus: "x"}); err == nil || !strings.Contains(err.Error(), cut) {
		t.Fatalf("truncated bz2: %v", err)
	}
	if v, _ := s.CorpusVersion(ctx, "x"); v.Docs != 0 {
		t.Fatalf("failed indexing left %d docs", v.Docs)
	}
}

// TestIndexParallelOrder: files read at once still add their documents in
// file order, chunk after chunk, so the corpus fingerprint (and the rowids)
// are those of a sequential read; warnings come out in file order too.
func TestIndexParallelOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// Three files, the first two over a batch (several chunks each).
	for f, n := range []int{indexBatch + 1234, indexBatch*2 + 7, 300} {
		var b strings.Builder
		for i := 0; i < n; i++ {
			if i == 17 {
				b.WriteString("{\"title\": \"bad\"\n") // malformed, reported in order
			}
			fmt.Fprintf(&b, "{\"title\": \"F%d D%d\", \"text\": \"File %d document %d.\"}\n", f, i, f, i)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%d.jsonl", f)), []byte(b.String()), 0o644)
	}
	var fps []string
	var warns []string
	for _, workers := range []int{1, 3} {
		s := newStore(t)
		var warn bytes.Buffer
		st, err := Index(ctx, s, []string{dir}, IndexOptions{Corpus: "c", Workers: workers, Warn: &warn})
		if err != nil {
			t.Fatal(err)
		}
		if want := indexBatch + 1234 + indexBatch*2 + 7 + 300; st.Docs != want || st.Malformed != 3 || st.Files != 3 {
			t.Fatalf("workers %d: stats %+v, want %d docs", workers, st, want)
		}
		v, err := s.CorpusVersion(ctx, "c")
		if err != nil || v.Docs != st.Docs {
			t.Fatalf("version %+v, %v", v, err)
		}
		fps = append(fps, v.Fingerprint)
		warns = append(warns, warn.String())
	}
	if fps[0] != fps[1] || warns[0] != warns[1] {
		t.Fatalf("parallel read differs: fingerprints %v, warnings\n%s\nvs\n%s", fps, warns[0], warns[1])
	}
	if !strings.HasPrefix(warns[0], filepath.Join(dir, "part-0.jsonl")+":18: ") {
		t.Fatalf("warnings not in file order:\n%s", warns[0])
	}

	// A cancelled context stops the readers and is reported.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Index(cctx, newStore(t), []string{dir}, IndexOptions{Corpus: "c"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled index: %v", err)
	}
}
