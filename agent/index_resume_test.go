package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/store"
)

// TestIndexResume interrupts an index after its first batch and runs it
// again: the corpus ends with exactly the file's documents in the file's
// order (the fingerprint of an uninterrupted index), a third run adds
// nothing, and a file changed since is refused instead of mixed in.
func TestIndexResume(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	const n = 3*indexBatch + 17
	for i := range n {
		if i == 7 {
			b.WriteString("{not json}\n") // a malformed line counts as a record read
		}
		fmt.Fprintf(&b, "{\"title\": \"Page %d\", \"text\": \"Page %d is about topic %d.\"}\n", i, i, i%31)
	}
	file := filepath.Join(dir, "big.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(name string) *store.Store {
		s, err := store.Open(context.Background(), filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ref := open("ref.db")
	if _, err := Index(context.Background(), ref, []string{file}, IndexOptions{Corpus: "c"}); err != nil {
		t.Fatal(err)
	}
	want, _ := ref.CorpusVersion(context.Background(), "c")

	s := open("resumed.db")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Index(ctx, s, []string{file}, IndexOptions{Corpus: "c", Workers: 1, Progress: func(IndexStats) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted index: %v", err)
	}
	part, _ := s.CorpusVersion(context.Background(), "c")
	if part.Docs == 0 || part.Docs >= n {
		t.Fatalf("the interrupted index added %d of %d documents; the test proves nothing", part.Docs, n)
	}
	st, err := Index(context.Background(), s, []string{file}, IndexOptions{Corpus: "c"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.CorpusVersion(context.Background(), "c")
	if got != want || st.Resumed != 1 || st.Docs != n-part.Docs || st.Malformed != 0 {
		t.Fatalf("after the rerun: %+v (%d added, %d resumed, %d malformed reported again), want %+v",
			got, st.Docs, st.Resumed, st.Malformed, want)
	}
	st, err = Index(context.Background(), s, []string{file}, IndexOptions{Corpus: "c"})
	if err != nil || st.Docs != 0 || st.Indexed != 1 {
		t.Fatalf("a third index of the same file: %d added, %d already indexed (%v)", st.Docs, st.Indexed, err)
	}
	if v, _ := s.CorpusVersion(context.Background(), "c"); v != want {
		t.Fatalf("a third index changed the corpus: %+v", v)
	}
	// Another corpus is another index of the file.
	if st, err := Index(context.Background(), s, []string{file}, IndexOptions{Corpus: "d"}); err != nil || st.Docs != n {
		t.Fatalf("the file into another corpus: %d added (%v)", st.Docs, err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := Index(context.Background(), s, []string{file}, IndexOptions{Corpus: "c"}); err == nil || !strings.Contains(err.Error(), "changed since") {
		t.Fatalf("a changed file: %v, want a refusal", err)
	}
}
