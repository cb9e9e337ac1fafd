package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// openTemp opens a fresh database file in a test temp dir.
func openTemp(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "fireact.db"))
}

// openAt opens the database at path, closed when the test ends (a test may
// close it earlier to reopen the file: Close is idempotent).
func openAt(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// seedRun creates an eval run and n questions of task "t" split "dev".
func seedRun(t testing.TB, s *Store, n int) (Run, []Question) {
	t.Helper()
	ctx := context.Background()
	r := Run{Kind: KindEval, Task: "t", Split: "dev", Method: "react", Config: `{"model":"m"}`}
	if _, err := s.CreateRun(ctx, &r); err != nil {
		t.Fatal(err)
	}
	qs := make([]Question, n)
	for i := range qs {
		qs[i] = Question{Task: "t", Split: "dev", Index: i, Text: fmt.Sprintf("question %d?", i), Gold: fmt.Sprint(i)}
	}
	if err := s.UpsertQuestions(ctx, qs); err != nil {
		t.Fatal(err)
	}
	return r, qs
}

// testSteps returns n steps, the last a finish.
func testSteps(n int) []Step {
	st := make([]Step, n)
	for i := range st {
		st[i] = Step{Thought: fmt.Sprintf("thought %d", i), Action: "search", Argument: fmt.Sprintf("q%d", i),
			Observation: fmt.Sprintf("obs %d", i), GeneratedTokens: 10}
	}
	st[n-1].Action = "finish"
	return st
}
