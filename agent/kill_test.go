package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// childEnv makes the test binary act as an eval process (see childMain).
const childEnv = "FIREACT_AGENT_TEST_CHILD"

const killQuestions = 24

// childMain is the re-executed test binary: an eval run of the tiny model over
// killQuestions questions, two at a time, into the database named by the
// environment, resuming the run named "killed".
func childMain() int {
	ctx := context.Background()
	s, err := store.Open(ctx, os.Getenv("FIREACT_DB"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer s.Close()
	m, err := llama.LoadModel(os.Getenv("FIREACT_MODEL"), llama.ModelOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e, err := llama.NewEngine(m, llama.EngineOptions{Context: llama.ContextOptions{NCtx: 8192, NSeqMax: 2, Threads: 1}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	task := testTask(killQuestions)
	a := &Agent{LLM: &LocalLLM{Engine: e}, Search: &Cache{Inner: &LocalSearch{Store: s, Corpus: "wiki"}, Store: s, Backend: "local:wiki"},
		Method: ReAct(), Prompt: Prompt{Format: FormatAlpaca}, Sampling: Sampling{Temperature: 0.8, Seed: 5}, Grammar: true}
	idx := make([]int, killQuestions)
	for i := range idx {
		idx[i] = i
	}
	_, err = RunTask(ctx, RunSpec{Store: s, Task: task, Agent: a, Indices: idx, Concurrency: 2,
		Run: store.Run{Name: "killed", Kind: store.KindEval, Task: task.Name(), Split: task.Split(), Method: "react"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKill9Resume SIGKILLs an eval process mid-run, reruns it, and checks that
// the run ends with exactly one episode per question.
func TestKill9Resume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	db := filepath.Join(t.TempDir(), "fireact.db")
	s, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fillCorpus(t, s, "wiki", killQuestions)
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", "FIREACT_DB="+db, "FIREACT_MODEL="+tinyModel(t))
		cmd.Stderr = os.Stderr
		return cmd
	}
	count := func() int {
		var n int
		if err := s.DB().QueryRow(`SELECT count(*) FROM episodes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cmd := child()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for count() < 3 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child recorded no episodes in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// This process, a second one on the same run while the child is alive, is
	// refused and told who holds the run, instead of solving the same questions
	// again. (The child has most of its questions left, as checked below.)
	if r, err := s.RunByName(context.Background(), "killed"); err != nil {
		t.Fatal(err)
	} else if _, err := s.ClaimRun(context.Background(), r.ID); !errors.Is(err, store.ErrRunBusy) ||
		!strings.Contains(err.Error(), fmt.Sprintf("being run by process %d", cmd.Process.Pid)) {
		t.Fatalf("second process on a live run: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	before := count()
	if before >= killQuestions {
		t.Fatalf("child finished all %d questions before the kill; make the run longer", before)
	}
	if out := child(); out.Run() != nil {
		t.Fatal("rerun failed")
	}
	var total, distinct int
	if err := s.DB().QueryRow(`SELECT count(*), count(DISTINCT question_id) FROM episodes`).Scan(&total, &distinct); err != nil {
		t.Fatal(err)
	}
	if total != killQuestions || distinct != killQuestions {
		t.Fatalf("after the rerun: %d episodes over %d questions, want %d", total, distinct, killQuestions)
	}
	r, err := s.RunByName(context.Background(), "killed")
	if err != nil || r.Status != store.StatusDone {
		t.Fatalf("run %+v, %v", r, err)
	}
	t.Logf("killed after %d of %d episodes; rerun completed the run", before, killQuestions)
}
