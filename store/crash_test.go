package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs this test binary again as a child that writes episodes,
// and SIGKILLs it at a random moment.
const (
	envCrashDB  = "FIREACT_CRASH_CHILD_DB"
	crashN      = 1500 // questions in the crash run
	crashSteps  = 4    // steps per episode
	crashWriter = 4    // concurrent writers in the child
)

// TestCrashChild is the child half of TestCrashResume; it does nothing unless
// started by it. It resumes the run "crash": writes an episode for every
// question that lacks one, with crashWriter goroutines, printing progress.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(envCrashDB)
	if path == "" {
		t.Skip("child process of TestCrashResume only")
	}
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	run, err := s.RunByName(ctx, "crash")
	if err != nil {
		fmt.Println("run:", err)
		os.Exit(2)
	}
	planned := make([]int, crashN)
	for i := range planned {
		planned[i] = i
	}
	missing, err := s.MissingIndices(ctx, run.ID, planned)
	if err != nil {
		fmt.Println("missing:", err)
		os.Exit(2)
	}
	var qids []int64
	rows, err := s.DB().QueryContext(ctx, `SELECT id FROM questions WHERE task = 'crash' ORDER BY idx`)
	if err != nil {
		fmt.Println("questions:", err)
		os.Exit(2)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		qids = append(qids, id)
	}
	rows.Close()
	fmt.Println("started")
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < crashWriter; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ep := Episode{RunID: run.ID, QuestionID: qids[i], Prediction: strconv.Itoa(i), Turns: crashSteps}
				if err := s.InsertEpisode(ctx, &ep, testSteps(crashSteps)); err != nil {
					fmt.Println("insert:", err)
					os.Exit(3)
				}
				fmt.Println("wrote", i)
			}
		}()
	}
	for _, i := range missing {
		work <- i
	}
	close(work)
	wg.Wait()
	s.Close()
	fmt.Println("finished")
}

// TestCrashResume kills a writing child process with SIGKILL at random moments
// and checks that the database opens, holds only complete episodes, and that
// resuming writes exactly the missing ones.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	s := openAt(t, path)
	if _, err := s.CreateRun(ctx, &Run{Name: "crash", Kind: KindEval, Task: "crash", Split: "dev"}); err != nil {
		t.Fatal(err)
	}
	qs := make([]Question, crashN)
	for i := range qs {
		qs[i] = Question{Task: "crash", Split: "dev", Index: i, Text: fmt.Sprint("q", i)}
	}
	if err := s.UpsertQuestions(ctx, qs); err != nil {
		t.Fatal(err)
	}
	s.Close()

	const kills = 3
	killed := 0
	for round := 0; ; round++ {
		lastRound := round >= kills
		out := runChild(t, path, !lastRound)
		count := checkConsistent(t, path)
		t.Logf("round %d: %s; %d/%d episodes recorded", round, out, count, crashN)
		if lastRound {
			if out != "finished" {
				t.Fatalf("final resume did not finish: %s", out)
			}
			if count != crashN {
				t.Fatalf("after resume %d episodes, want %d", count, crashN)
			}
			break
		}
		if out == "killed" {
			killed++
		}
	}
	if killed == 0 {
		t.Error("the child was never killed mid-way; the test proved nothing")
	}
}

// runChild runs the child writer; with kill it SIGKILLs it after it has
// written a random number of episodes plus a random delay. It returns
// "killed" or "finished".
func runChild(t *testing.T, path string, kill bool) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), envCrashDB+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	afterWrites := 20 + rand.IntN(200)
	delay := time.Duration(rand.IntN(3000)) * time.Microsecond
	sc := bufio.NewScanner(stdout)
	writes, finished := 0, false
	var last string
	for sc.Scan() {
		line := sc.Text()
		last = line
		switch {
		case line == "finished":
			finished = true
		case len(line) > 5 && line[:5] == "wrote":
			writes++
			if kill && writes == afterWrites {
				time.Sleep(delay)
				cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	err = cmd.Wait()
	if finished {
		return "finished"
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		return "killed"
	}
	t.Fatalf("child failed: %v (last line %q)", err, last)
	return ""
}

// checkConsistent reopens the database and checks integrity, that every
// episode has exactly its steps 0..turns-1, and no question is recorded twice.
// It returns the number of episodes.
func checkConsistent(t *testing.T, path string) int {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("database does not open after kill: %v", err)
	}
	defer s.Close()
	var ok string
	if err := s.DB().QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
	var incomplete int
	err = s.DB().QueryRowContext(ctx, `SELECT count(*) FROM episodes e
		WHERE e.turns != (SELECT count(*) FROM steps s WHERE s.episode_id = e.id)
		   OR e.turns != (SELECT coalesce(max(n), -1) + 1 FROM steps s WHERE s.episode_id = e.id)`).Scan(&incomplete)
	if err != nil || incomplete != 0 {
		t.Fatalf("%d incomplete episodes (%v)", incomplete, err)
	}
	var n, distinct int
	s.DB().QueryRowContext(ctx, `SELECT count(*), count(DISTINCT question_id) FROM episodes`).Scan(&n, &distinct)
	if n != distinct {
		t.Fatalf("%d episodes for %d questions: duplicates", n, distinct)
	}
	return n
}
