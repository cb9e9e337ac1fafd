package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dumpFixture is agent's HotpotQA abstracts-dump fixture (a tree of bz2
// files in the dump's layout, made by agent/testdata/make_corpus_fixtures.py).
const (
	dumpFixture    = "../../agent/testdata/hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts"
	badDumpFixture = "../../agent/testdata/bad-hotpotqa/enwiki-20171001-pages-meta-current-withlinks-abstracts"
	beirFixture    = "../../agent/testdata/beir/corpus.jsonl"
)

// fireact runs one command line in this process with its output captured.
func fireact(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter, app.Reader = &out, &errOut, strings.NewReader(stdin)
	err = app.RunContext(context.Background(), flagsFirst(app, append([]string{"fireact"}, args...)))
	return out.String(), errOut.String(), err
}

// TestIndexCommandFormats indexes the real layouts through the CLI: the
// abstracts dump as a directory, BEIR's corpus.jsonl, and a dump with
// malformed lines, which are listed by file and line and make the command fail
// where a file adds nothing.
func TestIndexCommandFormats(t *testing.T) {
	db := filepath.Join(t.TempDir(), "f.db")
	out, errOut, err := fireact(t, "", "index", dumpFixture, "--corpus", "wiki", "--db", db)
	if err != nil {
		t.Fatalf("index dump: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, `indexed 4 documents into corpus "wiki" (4 in all`) ||
		!strings.Contains(out, "read 3 files (hotpotqa: 3); skipped 0 malformed lines and 1 empty documents") {
		t.Fatalf("index output:\n%s", out)
	}
	out, _, err = fireact(t, "", "index", beirFixture, "--corpus", "beir", "--format", "beir", "--db", db)
	if err != nil || !strings.Contains(out, "indexed 3 documents") || !strings.Contains(out, "skipped 1 malformed lines") {
		t.Fatalf("index beir: %v\n%s", err, out)
	}
	out, errOut, err = fireact(t, "", "index", badDumpFixture, "--corpus", "bad", "--db", db)
	if err == nil || !strings.Contains(err.Error(), "nothing indexed") {
		t.Fatalf("bad dump: err %v", err)
	}
	if !strings.Contains(out, "indexed 1 documents") || !strings.Contains(out, "skipped 6 malformed lines") {
		t.Fatalf("bad dump output:\n%s", out)
	}
	if n := strings.Count(errOut, "(skipped)\n"); n != 6 || !strings.Contains(errOut, filepath.Join("AA", "wiki_00.bz2")+":2: invalid JSON at byte") {
		t.Fatalf("%d warning lines:\n%s", n, errOut)
	}
	if _, _, err := fireact(t, "", "index", beirFixture, "--format", "xml", "--db", db); err == nil {
		t.Fatal("unknown --format accepted")
	}
}

// TestSearchCommand answers many queries in one process: ranked TSV lines,
// --file and stdin, and --observation in both styles.
func TestSearchCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "f.db")
	if _, errOut, err := fireact(t, "", "index", dumpFixture, "--corpus", "wiki", "--db", db); err != nil {
		t.Fatalf("index: %v\n%s", err, errOut)
	}
	out, errOut, err := fireact(t, "", "search", "--corpus", "wiki", "-k", "3", "--db", db, "Salzburg", "Wolfgang Amadeus Mozart", "zzzz")
	if err != nil {
		t.Fatalf("search: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	byQuery := map[string][]string{}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) != 4 {
			t.Fatalf("line %q: want query, rank, title, score", l)
		}
		if _, err := strconv.ParseFloat(f[3], 64); err != nil {
			t.Fatalf("line %q: score: %v", l, err)
		}
		if want := strconv.Itoa(len(byQuery[f[0]]) + 1); f[1] != want {
			t.Fatalf("line %q: rank %s, want %s", l, f[1], want)
		}
		byQuery[f[0]] = append(byQuery[f[0]], f[2])
	}
	if len(byQuery["Salzburg"]) != 3 || byQuery["Salzburg"][0] != "Salzburg" || byQuery["Wolfgang Amadeus Mozart"][0] != "Wolfgang Amadeus Mozart" || len(byQuery["zzzz"]) != 0 {
		t.Fatalf("hits %v", byQuery)
	}
	if !strings.Contains(errOut, "3 queries in ") || !strings.Contains(errOut, "p99") {
		t.Fatalf("timing line: %q", errOut)
	}

	qf := filepath.Join(dir, "q.txt")
	os.WriteFile(qf, []byte("Salzburg\n\nSalzach\n"), 0o644)
	out, _, err = fireact(t, "", "search", "--file", qf, "-k", "1", "--db", db)
	if err != nil || out != fmt.Sprintf("Salzburg\t1\tSalzburg\t%s\nSalzach\t1\tSalzach\t%s\n", scoreOf(t, out, 0), scoreOf(t, out, 1)) {
		t.Fatalf("--file: %v\n%q", err, out)
	}
	out, _, err = fireact(t, "Salzach\n", "search", "--file", "-", "-k", "1", "--db", db)
	if err != nil || !strings.HasPrefix(out, "Salzach\t1\tSalzach\t") {
		t.Fatalf("--file -: %v\n%q", err, out)
	}

	out, _, err = fireact(t, "", "search", "--observation", "--db", db, "Salzach")
	if err != nil || out != "Salzach\tThe Salzach is a river in Austria and Germany. It flows through Salzburg.\n" {
		t.Fatalf("--observation (fireact): %v\n%q", err, out)
	}
	out, _, err = fireact(t, "", "search", "--observation", "--search-style", "react", "--db", db, "Salzach", "Salzach river Austria")
	want := "Salzach\tThe Salzach is a river in Austria and Germany. It flows through Salzburg..\n" +
		"Salzach river Austria\tCould not find Salzach river Austria. Similar: ['Salzach', 'Salzburg']."
	if err != nil || !strings.HasPrefix(out, want) {
		t.Fatalf("--observation (react): %v\n%q\nwant prefix\n%q", err, out, want)
	}

	for _, bad := range [][]string{
		{"search", "--db", db},                        // no query
		{"search", "--file", qf, "--db", db, "extra"}, // both
		{"search", "--corpus", "nope", "--db", db, "x"},
		{"search", "-k", "0", "--db", db, "x"},
		{"search", "--search-style", "bing", "--db", db, "x"},
	} {
		if _, _, err := fireact(t, "", bad...); err == nil {
			t.Errorf("fireact %v: no error", bad)
		}
	}
}

// scoreOf is the score column of line i of out.
func scoreOf(t *testing.T, out string, i int) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	if i >= len(lines) {
		return ""
	}
	f := strings.Split(lines[i], "\t")
	return f[len(f)-1]
}
