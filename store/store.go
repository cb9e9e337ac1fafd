// Package store keeps everything fireact records in one SQLite file: runs and
// their configuration, questions, episodes with their steps, the tool cache, an
// FTS5 corpus for offline search, training datasets, training runs with their
// loss curves (and, for policy-gradient training, each step's reward, KL and
// clipping), and the rounds of improve jobs.
//
// The database runs in WAL mode with foreign keys on, a busy timeout and
// immediate write transactions, so many goroutines (and processes) can write
// episodes at once; each episode commits with its steps in one transaction, so a
// crash leaves only whole episodes. The schema is created and upgraded by the
// numbered SQL files in migrations/, embedded in the binary; a database written
// by a newer binary is refused rather than misread.
//
// Build with the sqlite_fts5 tag (the Makefile does) for the corpus table.
//
// store imports no other project package except its own leaf subpackage
// store/trajectory: the agent and finetune packages meet here.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	// Registers the "sqlite3" driver.
	_ "github.com/mattn/go-sqlite3"
)

// DefaultPath is the database file used when neither --db nor FIREACT_DB is set.
const DefaultPath = "fireact.db"

// EnvPath is the environment variable that names the database file.
const EnvPath = "FIREACT_DB"

// busyTimeout is how long a writer waits for the lock before failing. Writers
// hold the lock only for one episode's inserts (milliseconds), so this is far
// more than contention needs; it bounds waits behind a long checkpoint.
const busyTimeout = 30 * time.Second

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrSchemaTooNew is returned by Open for a database migrated by a newer fireact.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this fireact binary; upgrade fireact")

// ErrNotFound is returned when a requested record does not exist.
var ErrNotFound = errors.New("store: not found")

// Store is an open fireact database. It is safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string
}

// PathFromEnv returns flagValue if set, else $FIREACT_DB, else DefaultPath.
func PathFromEnv(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv(EnvPath); p != "" {
		return p
	}
	return DefaultPath
}

// Open opens (creating if needed) the database at path and brings its schema up
// to date. It fails with ErrSchemaTooNew if the file's schema is newer than the
// migrations this binary embeds.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, explain(path, err))
	}
	return s, nil
}

// dsn builds the go-sqlite3 connection string. Every pooled connection gets the
// same pragmas: WAL (readers never block the writer), foreign keys (off by
// default in SQLite), a busy timeout, synchronous=NORMAL (in WAL mode a process
// crash loses nothing committed; only a power loss can drop the last
// transactions), and _txlock=immediate so a write transaction takes the write
// lock at BEGIN: a deferred transaction that upgrades later can fail with
// SQLITE_BUSY without waiting, which is the usual "database is locked" error.
func dsn(path string) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.Itoa(int(busyTimeout/time.Millisecond)))
	q.Set("_synchronous", "NORMAL")
	q.Set("_txlock", "immediate")
	return "file:" + uriPath(path) + "?" + q.Encode()
}

// uriPath escapes the characters that would end or change the path of a
// SQLite URI filename: "?" (the query), "#" (a fragment) and "%" itself.
// Without it a database named "runs#2.db" opened "runs" (a fuzzer found it,
// through a test's temporary directory).
func uriPath(path string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// Path returns the database file path.
func (s *Store) Path() string { return s.path }

// DB returns the underlying handle, for tests and one-off maintenance queries.
func (s *Store) DB() *sql.DB { return s.db }

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations sorted by version. File names are
// "NNNN_description.sql".
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// SchemaVersion returns the newest migration applied to the database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return int(v.Int64), nil
}

// LatestSchemaVersion returns the newest schema version this binary knows.
func LatestSchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate applies the missing migrations, each in its own transaction together
// with its schema_migrations row, so a crash mid-migration leaves the previous
// version intact.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMP NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	cur, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if latest := ms[len(ms)-1].version; cur > latest {
		return fmt.Errorf("%w (database version %d, binary knows up to %d)", ErrSchemaTooNew, cur, latest)
	}
	for _, m := range ms {
		if m.version <= cur {
			continue
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			// Another process may have migrated between our read and the write
			// lock; the immediate transaction makes this re-check race free.
			var done int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&done); err != nil {
				return err
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UTC())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// inTx runs fn in a write transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return explain(s.path, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return explain(s.path, err)
	}
	return explain(s.path, tx.Commit())
}

// exec runs one statement outside a transaction, with explain's remedy on a
// read-only file or a full disk, as inTx gives the statements inside one.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	return res, explain(s.path, err)
}

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// timeOrZero maps NULL to the zero time.
func timeOrZero(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}

// jsonOrEmpty returns s, or "{}" when s is empty, for JSON columns.
func jsonOrEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "{}"
	}
	return s
}
