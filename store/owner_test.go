package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClaimRun: a run held by another live process is refused with who holds
// it; once that process is gone (killed with -9, no Release) the claim is
// taken over; the holder itself may claim again, and Release frees it.
func TestClaimRun(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := s.CreateRun(ctx, &Run{Name: "r", Kind: KindEval})
	if err != nil {
		t.Fatal(err)
	}
	// Another process: a real one, which the test then kills.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Skipf("no sleep binary to stand for another process: %v", err)
	}
	defer other.Process.Kill()
	host, _ := os.Hostname()
	now := time.Now().UTC()
	if _, err := s.DB().Exec(`INSERT INTO run_owners (run_id, host, pid, since, heartbeat_at) VALUES (?, ?, ?, ?, ?)`,
		id, host, other.Process.Pid, now, now); err != nil {
		t.Fatal(err)
	}
	_, err = s.ClaimRun(ctx, id)
	if !errors.Is(err, ErrRunBusy) || !strings.Contains(err.Error(), "process "+strconv.Itoa(other.Process.Pid)) {
		t.Fatalf("claim of a run another live process holds: %v", err)
	}
	other.Process.Kill()
	other.Wait()
	c, err := s.ClaimRun(ctx, id)
	if err != nil {
		t.Fatalf("claim after the holder died: %v", err)
	}
	again, err := s.ClaimRun(ctx, id)
	if err != nil {
		t.Fatalf("the holder's own second claim: %v", err)
	}
	again.Release()
	c.Release()
	var n int
	s.DB().QueryRow(`SELECT count(*) FROM run_owners`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d claims left after Release", n)
	}
	// Another host's claim counts while it is fresh and is taken over once stale.
	old := time.Now().UTC().Add(-2 * ownerStale)
	s.DB().Exec(`INSERT INTO run_owners (run_id, host, pid, since, heartbeat_at) VALUES (?, 'elsewhere', 1, ?, ?)`, id, old, time.Now().UTC())
	if _, err := s.ClaimRun(ctx, id); !errors.Is(err, ErrRunBusy) {
		t.Fatalf("claim of a run a fresh owner on another host holds: %v", err)
	}
	s.DB().Exec(`UPDATE run_owners SET heartbeat_at = ?`, old)
	c, err = s.ClaimRun(ctx, id)
	if err != nil {
		t.Fatalf("claim over a stale owner on another host: %v", err)
	}
	c.Release()
}
