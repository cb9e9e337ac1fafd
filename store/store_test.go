package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenMigratesAndSetsPragmas(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != LatestSchemaVersion() || v < 1 {
		t.Fatalf("schema version %d, want %d", v, LatestSchemaVersion())
	}
	var mode string
	if err := s.DB().QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := s.DB().QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v; want 1", fk, err)
	}
	// Foreign keys are enforced: an episode of a missing run is refused.
	err = s.InsertEpisode(ctx, &Episode{RunID: 999, QuestionID: 999}, nil)
	if err == nil || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Errorf("episode with dangling run: err = %v, want FOREIGN KEY failure", err)
	}
}

func TestReopenKeepsDataAndVersion(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	s := openAt(t, path)
	id, err := s.CreateRun(ctx, &Run{Kind: KindEval, Name: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	r, err := s.RunByName(ctx, "keep")
	if err != nil || r.ID != id {
		t.Fatalf("after reopen: %+v, %v", r, err)
	}
	var n int
	s.DB().QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n)
	if n != LatestSchemaVersion() {
		t.Errorf("%d migration rows after reopen, want %d (each applied once)", n, LatestSchemaVersion())
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "new.db")
	s := openAt(t, path)
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at)
		VALUES (?, 'future.sql', CURRENT_TIMESTAMP)`, LatestSchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestPathFromEnv(t *testing.T) {
	t.Setenv(EnvPath, "")
	if got := PathFromEnv(""); got != DefaultPath {
		t.Errorf("default = %q", got)
	}
	t.Setenv(EnvPath, "/tmp/e.db")
	if got := PathFromEnv(""); got != "/tmp/e.db" {
		t.Errorf("env = %q", got)
	}
	if got := PathFromEnv("f.db"); got != "f.db" {
		t.Errorf("flag = %q", got)
	}
}

// TestOpenPathWithURICharacters opens databases whose names hold the
// characters a SQLite URI gives a meaning ("?", "#", "%"): each is its own
// file under exactly its name.
func TestOpenPathWithURICharacters(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"runs#2.db", "a?b.db", "100%.db", "x%23y.db"} {
		path := filepath.Join(dir, name)
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := s.CreateRun(context.Background(), &Run{Name: fmt.Sprint("run", i), Kind: KindEval}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: the database is not at its path: %v", name, err)
		}
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), "-wal") && !strings.HasSuffix(e.Name(), "-shm") {
			names = append(names, e.Name())
		}
	}
	if len(names) != 4 {
		t.Errorf("files in the directory: %v, want the four databases only", names)
	}
}

// TestWritesOutsideTransactionsExplain: a single-statement write (not in
// inTx) on a database the process may not write says so and names the file,
// as the transactional writes do. The read-only handle stands for a file the
// user may not write (a chmod does not stop root, who runs CI).
func TestWritesOutsideTransactionsExplain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ro.db")
	rw := openAt(t, path)
	id, err := rw.CreateRun(ctx, &Run{Kind: KindEval, Name: "ro"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+uriPath(path)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ro := &Store{db: db, path: path}
	for name, write := range map[string]func() error{
		"SetRunStatus": func() error { return ro.SetRunStatus(ctx, id, StatusDone) },
		"CachePut":     func() error { return ro.CachePut(ctx, "local", "q", "r") },
	} {
		err := write()
		if err == nil || !strings.Contains(err.Error(), "read-only for this user") || !strings.Contains(err.Error(), path) {
			t.Errorf("%s on a read-only database: %v, want the remedy naming %s", name, err, path)
		}
	}
}
