package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrRunBusy is wrapped by ClaimRun's error when another live process is
// running the run.
var ErrRunBusy = errors.New("run is being run by another process")

// Heartbeat timings of a run claim: the owner refreshes its row every
// ownerHeartbeat; an owner on another host is presumed gone after ownerStale
// without one (on this host, whether its process exists decides).
const (
	ownerHeartbeat = 15 * time.Second
	ownerStale     = time.Minute
)

// RunClaim is a process's hold on a run; Release gives it up.
type RunClaim struct {
	s     *Store
	runID int64
	host  string
	pid   int
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	err   error
}

// ClaimRun records this process as the one running runID, unless another
// live process holds it: then the error wraps ErrRunBusy and says which. A
// claim left by a process that died (kill -9, power loss) is taken over. The
// claim is kept fresh in the background until Release.
func (s *Store) ClaimRun(ctx context.Context, runID int64) (*RunClaim, error) {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	c := &RunClaim{s: s, runID: runID, host: host, pid: os.Getpid(), stop: make(chan struct{}), done: make(chan struct{})}
	now := time.Now().UTC()
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var oHost string
		var oPID int
		var since, beat time.Time
		err := tx.QueryRowContext(ctx, `SELECT host, pid, since, heartbeat_at FROM run_owners WHERE run_id = ?`, runID).
			Scan(&oHost, &oPID, &since, &beat)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case (oHost != host || oPID != c.pid) && ownerAlive(host, oHost, oPID, beat, now):
			return fmt.Errorf("%w: run %d is being run by process %d on %s since %s (last heard of %s ago); wait for it or stop it first",
				ErrRunBusy, runID, oPID, oHost, since.Local().Format(time.DateTime), now.Sub(beat).Round(time.Second))
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO run_owners (run_id, host, pid, since, heartbeat_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, since = excluded.since, heartbeat_at = excluded.heartbeat_at`,
			runID, host, c.pid, now, now)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrRunBusy) {
			return nil, fmt.Errorf("store: %w", err)
		}
		return nil, fmt.Errorf("store: claim run %d: %w", runID, err)
	}
	go c.heartbeat()
	return c, nil
}

// ownerAlive says whether the recorded owner may still be running: on this
// host, whether its process exists; elsewhere, whether it was heard of lately.
func ownerAlive(host, oHost string, pid int, beat, now time.Time) bool {
	if oHost != host {
		return now.Sub(beat) < ownerStale
	}
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (c *RunClaim) heartbeat() {
	defer close(c.done)
	t := time.NewTicker(ownerHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			// A failed refresh only risks a takeover by another host after a
			// minute; the run itself goes on.
			c.s.db.Exec(`UPDATE run_owners SET heartbeat_at = ? WHERE run_id = ? AND host = ? AND pid = ?`,
				time.Now().UTC(), c.runID, c.host, c.pid)
		}
	}
}

// Release gives the run up (idempotent). A process that dies without it
// leaves a claim the next one takes over.
func (c *RunClaim) Release() error {
	if c == nil {
		return nil
	}
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		if _, err := c.s.db.Exec(`DELETE FROM run_owners WHERE run_id = ? AND host = ? AND pid = ?`, c.runID, c.host, c.pid); err != nil {
			c.err = fmt.Errorf("store: release run %d: %w", c.runID, err)
		}
	})
	return c.err
}
