package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/store"
)

// FuzzCorpusFile feeds arbitrary corpus files (JSON lines in fireact's,
// HotpotQA's and BEIR's layouts, JSON arrays, broken and truncated ones)
// through `fireact index`'s reader into a real store. It must never panic;
// whatever it indexes must be counted, and every skipped line reported.
// `make test` runs the seeds (fuzzing it would rebuild llama.cpp with
// coverage instrumentation: go test -fuzz FuzzCorpusFile ./agent).
func FuzzCorpusFile(f *testing.F) {
	for _, seed := range []string{
		`{"title": "Paris", "text": "Paris is the capital of France."}` + "\n",
		`{"id": "12", "url": "https://en.wikipedia.org/wiki?curid=12", "title": "Anarchism", "text": ["Anarchism is a political philosophy.", " It rejects hierarchy."]}` + "\n",
		`{"_id": "doc1", "title": "Salzburg", "text": "Salzburg is a city in Austria.", "metadata": {}}` + "\n",
		`[{"title": "A", "text": "a"}, {"title": 3, "text": "b"}, {"text": ""}]`,
		`[{"title": "A", "text": "a"},`,
		"{not json}\n{\"title\": \"B\", \"text\": \"b\"}\n",
		"\xEF\xBB\xBF{\"title\": \"BOM\", \"text\": \"x\"}\n",
		`{"title": "P", "text": [["para", "graphs"]]}` + "\n",
		`{"_id": 1}` + "\n" + `{"title": null, "text": null}`,
		"", "   \n\n", "[", "]", "null",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "corpus.jsonl")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(context.Background(), filepath.Join(dir, "f.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var warn countWriter
		st, err := Index(context.Background(), s, []string{path}, IndexOptions{Corpus: "c", Warn: &warn, MaxWarnings: 1 << 20})
		v, verr := s.CorpusVersion(context.Background(), "c")
		if verr != nil {
			t.Fatal(verr)
		}
		if v.Docs != st.Docs {
			t.Fatalf("Index counted %d documents, the corpus holds %d (err %v)", st.Docs, v.Docs, err)
		}
		if warn.lines != st.Malformed {
			t.Fatalf("%d malformed lines counted, %d reported", st.Malformed, warn.lines)
		}
		if err == nil && st.Docs == 0 {
			t.Fatal("nothing indexed, and no error")
		}
	})
}

// countWriter counts the lines written to it.
type countWriter struct{ lines int }

func (c *countWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			c.lines++
		}
	}
	return len(p), nil
}
