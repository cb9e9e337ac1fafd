package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fireact/fireact/demo"
	"github.com/fireact/fireact/improve/improvetest"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
)

// The fault-injection suite (`make faults`; `make test` runs one trial of
// each). Every trial runs the real command in a child process — this test
// binary re-executed as fireact — injects one fault, runs the command again as
// a user would, and checks the outcome against an uninterrupted run of the
// same command: the planned episodes, documents and steps exactly once each,
// and adapters bit for bit. The checks never depend on when the fault struck:
// a kill point is drawn (seeded) over the uninterrupted run's duration, and a
// trial whose child finished before its kill still counts, as "not hit".
const (
	faultArgsEnv   = "FIREACT_FAULT_ARGS"   // JSON argv: the child runs the command
	faultFSizeEnv  = "FIREACT_FAULT_FSIZE"  // bytes: the child's RLIMIT_FSIZE (ulimit -f)
	faultTrialsEnv = "FIREACT_FAULT_TRIALS" // kill trials per command (default 1)
	faultSeedEnv   = "FIREACT_FAULT_SEED"   // seed of the kill points (default 1)
	faultReportEnv = "FIREACT_FAULT_REPORT" // file the figures table is written to
)

// TestMain lets this test binary act as the fireact command in the children
// of the fault-injection tests.
func TestMain(m *testing.M) {
	if argv := os.Getenv(faultArgsEnv); argv != "" {
		os.Exit(faultChild(argv))
	}
	os.Exit(m.Run())
}

// faultChild runs fireact with the JSON-encoded arguments, under a file-size
// limit when one is set. SIGXFSZ is ignored, as a shell's `ulimit -f` user
// would see it: the write that crosses the limit fails with EFBIG instead of
// killing the process.
func faultChild(argv string) int {
	var args []string
	if err := json.Unmarshal([]byte(argv), &args); err != nil {
		fmt.Fprintln(os.Stderr, "fault child:", err)
		return 2
	}
	if v := os.Getenv(faultFSizeEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fault child:", err)
			return 2
		}
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Fprintln(os.Stderr, "fault child: setrlimit:", err)
			return 2
		}
	}
	return run(append([]string{"fireact"}, args...))
}

// faultWorld is the data every trial starts from: FireAct's dev questions (a
// slice), a corpus file, the student and base models, and a teacher.
type faultWorld struct {
	dir     string // holds shared/data/fireact and work/
	work    string // the commands' working directory template
	trials  int
	rng     *rand.Rand
	figures []faultFigure
}

// faultFigure is one row of the suite's table.
type faultFigure struct {
	Command, Fault string
	Trials, Hit    int // trials run; trials where the fault struck mid-run
	Survived       int // trials whose outcome equals the uninterrupted run's
}

// faultQuestions is how many HotpotQA dev questions the runs answer.
const faultQuestions = 16

func newFaultWorld(t *testing.T) *faultWorld {
	t.Helper()
	real, err := filepath.Abs(realData)
	if err != nil {
		t.Fatal(err)
	}
	dev := readJSONArray(t, filepath.Join(real, "fireact", "hotpotqa", "dev.json"))[:faultQuestions]
	dir := t.TempDir()
	w := &faultWorld{dir: dir, work: filepath.Join(dir, "work"), trials: 1, rng: rand.New(rand.NewPCG(1, 2))}
	if v := os.Getenv(faultTrialsEnv); v != "" {
		if w.trials, err = strconv.Atoi(v); err != nil || w.trials < 1 {
			t.Fatalf("%s=%q: want a positive count", faultTrialsEnv, v)
		}
	}
	if v := os.Getenv(faultSeedEnv); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", faultSeedEnv, v, err)
		}
		w.rng = rand.New(rand.NewPCG(seed, 2))
	}
	data := filepath.Join(dir, "shared", "data", "fireact")
	mkdir(t, w.work, filepath.Join(data, "hotpotqa"))
	link(t, filepath.Join(real, "fireact", "prompts"), filepath.Join(data, "prompts"))
	writeJSON(t, filepath.Join(data, "hotpotqa", "dev.json"), dev)
	var wiki strings.Builder
	for _, q := range dev {
		fmt.Fprintf(&wiki, "{\"title\": %q, \"text\": %q}\n", q["answer"], "A page about "+fmt.Sprint(q["answer"])+".")
	}
	writeFile(t, filepath.Join(w.work, "wiki.jsonl"), wiki.String())
	// A corpus large enough that indexing it takes several batches.
	var big strings.Builder
	for i := range 24000 {
		fmt.Fprintf(&big, "{\"title\": \"Page %d\", \"text\": \"Page %d is about topic %d and the town of %d.\"}\n", i, i, i%97, i%1009)
	}
	writeFile(t, filepath.Join(w.work, "big.jsonl"), big.String())
	err = modelgen.WriteLlama(filepath.Join(w.work, "student.gguf"), modelgen.LlamaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 4096, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	gold := map[string]string{}
	for _, q := range dev {
		gold[strings.TrimSpace(fmt.Sprint(q["question"]))] = fmt.Sprint(q["answer"])
	}
	srv := httptest.NewServer(teacherHandler(t, gold))
	t.Cleanup(srv.Close)
	t.Setenv("OPENAI_BASE_URL", srv.URL+"/v1")
	t.Setenv("OPENAI_API_KEY", "sk-faults-test")
	// Children run as another user in the read-only trial: let them in.
	for d := dir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return w
}

// trialDir copies the world's work directory (and the database file from,
// when set) into a fresh directory beside it, so that ../shared/data still
// resolves, and returns it.
func (w *faultWorld) trialDir(t *testing.T, from string) string {
	t.Helper()
	d, err := os.MkdirTemp(w.dir, "trial-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	// A trial directory sits one level below w.dir, like work/, so its
	// ../shared/data is the world's.
	ents, err := os.ReadDir(w.work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			os.Link(filepath.Join(w.work, e.Name()), filepath.Join(d, e.Name()))
		}
	}
	if from != "" {
		copyFile(t, from, filepath.Join(d, "fireact.db"))
	}
	return d
}

// child is one fireact process of a trial.
type child struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan struct{}
	err    error
	status int
}

// start starts fireact args in dir; fsize > 0 limits the size of any file it
// writes; asNobody runs it as an unprivileged user (for the read-only trial
// when the test runs as root, who may write a file whatever its mode).
func startChild(t *testing.T, dir string, args []string, fsize int64, asNobody bool) *child {
	t.Helper()
	argv, _ := json.Marshal(args)
	exe := os.Args[0]
	if asNobody {
		exe = filepath.Join(dir, "fireact.test")
		copyFile(t, os.Args[0], exe)
		os.Chmod(exe, 0o755)
	}
	c := &child{cmd: exec.Command(exe, "-test.run=^$"), done: make(chan struct{})}
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), faultArgsEnv+"="+string(argv), "FIREACT_DB=", "FIREACT_DATA=")
	if fsize > 0 {
		c.cmd.Env = append(c.cmd.Env, faultFSizeEnv+"="+strconv.FormatInt(fsize, 10))
	}
	if asNobody {
		c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		c.cmd.Env = append(c.cmd.Env, "HOME="+dir)
	}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		c.status = c.cmd.ProcessState.ExitCode()
		close(c.done)
	}()
	return c
}

// wait waits for the child, failing the test after a bound.
func (c *child) wait(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(5 * time.Minute):
		c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("%v: no exit after 5 minutes:\n%s", c.cmd.Args, c.out.String())
	}
}

// runOK runs fireact args in dir to the end and fails the test unless it exits 0.
func runOK(t *testing.T, dir string, args ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	c := startChild(t, dir, args, 0, false)
	c.wait(t)
	if c.status != 0 {
		t.Fatalf("fireact %s (in %s) exited %d:\n%s", strings.Join(args, " "), dir, c.status, c.out.String())
	}
	return c.out.String(), time.Since(start)
}

// killAt starts fireact args in dir and SIGKILLs it after d; it reports
// whether the kill struck before the command ended by itself.
func killAt(t *testing.T, dir string, args []string, d time.Duration) bool {
	t.Helper()
	c := startChild(t, dir, args, 0, false)
	select {
	case <-c.done:
		return false
	case <-time.After(d):
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	return c.status != 0
}

// outcome describes what a command left behind in dir and its database s;
// the checks compare descriptions.
type outcome func(t *testing.T, s *store.Store, dir string) string

// outcomeIn describes the outcome of a command that ran in dir.
func outcomeIn(t *testing.T, dir string, what outcome) string {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(dir, "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return what(t, s, dir)
}

// killTrials runs the kill -9 trials of one command: an uninterrupted run
// sets the reference outcome and duration; each trial kills a run at a seeded
// point of that duration, runs the command again and compares outcomes.
func (w *faultWorld) killTrials(t *testing.T, name, from string, args []string, what outcome) {
	t.Helper()
	ref := w.trialDir(t, from)
	_, took := runOK(t, ref, args...)
	want := outcomeIn(t, ref, what)
	fig := faultFigure{Command: name, Fault: "kill -9, then rerun"}
	for i := range w.trials {
		dir := w.trialDir(t, from)
		at := time.Duration(w.rng.Int64N(int64(took) + 1))
		if killAt(t, dir, args, at) {
			fig.Hit++
		}
		runOK(t, dir, args...)
		fig.Trials++
		if got := outcomeIn(t, dir, what); got != want {
			t.Errorf("%s, trial %d (killed at %v of %v): after the rerun\n  got  %s\n  want %s", name, i, at, took, got, want)
			continue
		}
		fig.Survived++
	}
	w.figures = append(w.figures, fig)
}

// episodes summarises a run: its episodes per question (each must be
// exactly one) and their answers.
func episodes(run string) outcome {
	return func(t *testing.T, s *store.Store, dir string) string {
		r, err := s.RunByName(context.Background(), run)
		if err != nil {
			t.Fatal(err)
		}
		eps, err := s.Episodes(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		per := map[string]int{}
		for _, e := range eps {
			per[strconv.FormatInt(e.QuestionID, 10)]++
		}
		dup := 0
		for _, n := range per {
			if n > 1 {
				dup++
			}
		}
		sum, err := s.Summary(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d episodes of %d questions (%d duplicated), status %s, EM %.4f", len(eps), len(per), dup, r.Status, sum.EM)
	}
}

// corpus summarises a corpus: its size and content fingerprint.
func corpus(name string) outcome {
	return func(t *testing.T, s *store.Store, dir string) string {
		v, err := s.CorpusVersion(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d documents, fingerprint %s", v.Docs, v.Fingerprint)
	}
}

// adapter summarises a training job: the adapter's SHA-256 and the steps of
// its loss curve (each once).
func adapter(path string) outcome {
	return func(t *testing.T, s *store.Store, dir string) string {
		sum := fileSHA(t, filepath.Join(dir, path))
		runs, err := s.ListRuns(context.Background(), "train")
		if err != nil {
			t.Fatal(err)
		}
		var steps []string
		for _, r := range runs {
			curve, err := s.LossCurve(context.Background(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int]int{}
			for _, p := range curve {
				seen[p.Step]++
			}
			ok := len(seen) == len(curve)
			steps = append(steps, fmt.Sprintf("run %s: %d loss points, each step once: %v", r.Name, len(curve), ok))
		}
		return fmt.Sprintf("adapter sha256 %s; %d training runs; %s", sum, len(runs), strings.Join(steps, "; "))
	}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return "missing (" + err.Error() + ")"
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// TestFaults is the fault-injection suite; see the comment at the top.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	w := newFaultWorld(t)
	// The store every command starts from: the small corpus indexed.
	seed := w.trialDir(t, "")
	runOK(t, seed, "index", "--corpus", "wiki", "wiki.jsonl")
	seedDB := filepath.Join(seed, "fireact.db")

	generate := []string{"generate", "--backend", "openai", "--model", "gpt-4", "--task", "hotpotqa", "--split", "dev",
		"--run", "gen", "-j", "2", "--corpus", "wiki"}
	eval := []string{"eval", "-m", "student.gguf", "--task", "hotpotqa", "--split", "dev", "--run", "ev",
		"-j", "2", "--max-turns", "2", "--max-tokens", "16", "--threads", "1"}
	index := []string{"index", "--corpus", "big", "big.jsonl"}

	// Training data: the generate run's episodes.
	gen := w.trialDir(t, seedDB)
	runOK(t, gen, generate...)
	finetune := []string{"finetune", "--base", "student.gguf", "--from-run", "gen", "--out", "out/a.gguf",
		"--targets", "all", "--rank", "16", "--max-steps", "24", "--save-every", "3", "--max-tokens", "256", "--threads", "1"}

	t.Run("kill", func(t *testing.T) {
		w.killTrials(t, "index", seedDB, index, corpus("big"))
		w.killTrials(t, "generate", seedDB, generate, episodes("gen"))
		w.killTrials(t, "eval", seedDB, eval, episodes("ev"))
		w.killTrials(t, "finetune", filepath.Join(gen, "fireact.db"), finetune, adapter("out/a.gguf"))
		// The reward loops take a minute a trial: `make faults` runs them, a
		// single-trial run (make test) does not.
		if w.trials > 1 {
			w.improveKillTrials(t)
		}
	})

	t.Run("disk-full", func(t *testing.T) {
		// A limit applies to every file's size, the database's write-ahead log
		// (which starts empty) included.
		above := func(margin int64) func(int64) int64 { return func(db int64) int64 { return db + margin } }
		w.diskFull(t, "index", seedDB, index, above(256<<10), corpus("big"))
		// The episodes' log outgrows 64 KiB well before the run ends.
		w.diskFull(t, "generate", seedDB, generate, func(int64) int64 { return 64 << 10 }, episodes("gen"))
		// The limit strikes at the first checkpoint's optimizer state, which
		// is larger than the database.
		w.diskFull(t, "finetune", filepath.Join(gen, "fireact.db"), finetune, above(0), adapter("out/a.gguf"))
	})

	t.Run("read-only", func(t *testing.T) {
		w.readOnly(t, seedDB, generate)
		w.readOnly(t, seedDB, index)
	})

	t.Run("second-process", func(t *testing.T) {
		w.secondProcess(t, seedDB, eval, episodes("ev"))
	})

	var tab strings.Builder
	tab.WriteString("| command | fault | trials | fault struck mid-run | survived |\n|---|---|---|---|---|\n")
	for _, f := range w.figures {
		fmt.Fprintf(&tab, "| %s | %s | %d | %d | %d |\n", f.Command, f.Fault, f.Trials, f.Hit, f.Survived)
	}
	t.Logf("fault-injection figures:\n%s", tab.String())
	if p := os.Getenv(faultReportEnv); p != "" {
		if err := os.WriteFile(p, []byte(tab.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// diskFull runs a command under a file-size limit a little above the
// database's size (the disk filling up mid-write): it must fail with a clear
// error and lose nothing already recorded; the next run without the limit
// must end with the uninterrupted run's outcome.
func (w *faultWorld) diskFull(t *testing.T, name, from string, args []string, limit func(dbSize int64) int64, what outcome) {
	t.Helper()
	ref := w.trialDir(t, from)
	runOK(t, ref, args...)
	want := outcomeIn(t, ref, what)
	fig := faultFigure{Command: name, Fault: "file size limit (disk full), then rerun"}
	dir := w.trialDir(t, from)
	fi, err := os.Stat(filepath.Join(dir, "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := startChild(t, dir, args, limit(fi.Size()), false)
	c.wait(t)
	fig.Trials++
	msg := c.out.String()
	switch {
	case c.status == 0:
		t.Errorf("%s under a file-size limit exited 0; the limit did not strike (raise the workload):\n%s", name, msg)
	case !strings.Contains(msg, "full") && !strings.Contains(msg, "file-size limit") && !strings.Contains(msg, "File too large"):
		t.Errorf("%s under a full disk: the error does not say the disk is full:\n%s", name, msg)
	default:
		fig.Hit++
		t.Logf("%s on a full disk says: %s", name, lastLine(msg))
	}
	// A failed write leaves no half-written file behind, under its name or a
	// temporary one.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("%s on a full disk left %s behind", name, p)
		}
		return nil
	})
	runOK(t, dir, args...)
	if got := outcomeIn(t, dir, what); got != want {
		t.Errorf("%s after a full disk and a rerun:\n  got  %s\n  want %s", name, got, want)
	} else {
		fig.Survived++
	}
	w.figures = append(w.figures, fig)
}

// readOnly runs a command on a database file the user may not write: it must
// fail, say so, and leave the file as it was.
func (w *faultWorld) readOnly(t *testing.T, from string, args []string) {
	t.Helper()
	fig := faultFigure{Command: args[0], Fault: "read-only database file"}
	dir := w.trialDir(t, from)
	db := filepath.Join(dir, "fireact.db")
	before := fileSHA(t, db)
	if err := os.Chmod(db, 0o444); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, dir, args, 0, os.Geteuid() == 0)
	c.wait(t)
	fig.Trials++
	msg := c.out.String()
	if c.status == 0 {
		t.Errorf("%s on a read-only database exited 0:\n%s", args[0], msg)
	} else if !strings.Contains(msg, "fireact.db is read-only for this user") {
		t.Errorf("%s on a read-only database: the error does not say so:\n%s", args[0], msg)
	} else {
		fig.Hit++
		t.Logf("%s on a read-only database says: %s", args[0], lastLine(msg))
	}
	if after := fileSHA(t, db); after != before {
		t.Errorf("%s changed a read-only database", args[0])
	} else if fig.Hit == 1 {
		fig.Survived++
	}
	w.figures = append(w.figures, fig)
}

// secondProcess starts a command twice on the same run: while the first
// lives, the second must refuse and say who holds the run; the first ends
// with the uninterrupted outcome.
func (w *faultWorld) secondProcess(t *testing.T, from string, args []string, what outcome) {
	t.Helper()
	ref := w.trialDir(t, from)
	runOK(t, ref, args...)
	want := outcomeIn(t, ref, what)
	fig := faultFigure{Command: args[0], Fault: "second process on the same run"}
	dir := w.trialDir(t, from)
	first := startChild(t, dir, args, 0, false)
	// Wait until the first holds the run (its claim is in the store).
	claimed := false
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && !claimed; time.Sleep(5 * time.Millisecond) {
		select {
		case <-first.done:
			t.Fatalf("the first process ended before the second started:\n%s", first.out.String())
		default:
		}
		claimed = runClaimed(dir)
	}
	if !claimed {
		t.Fatal("the first process never claimed its run")
	}
	second := startChild(t, dir, args, 0, false)
	second.wait(t)
	first.wait(t)
	fig.Trials++
	pid := fmt.Sprintf("process %d", first.cmd.Process.Pid)
	if second.status == 0 || !strings.Contains(second.out.String(), pid) {
		t.Errorf("second process on a live run: exit %d, want a refusal naming %s:\n%s", second.status, pid, second.out.String())
	} else {
		fig.Hit++
	}
	if first.status != 0 {
		t.Errorf("the first process failed:\n%s", first.out.String())
	} else if got := outcomeIn(t, dir, what); got != want {
		t.Errorf("after two processes on one run:\n  got  %s\n  want %s", got, want)
	} else if fig.Hit == 1 {
		fig.Survived++
	}
	w.figures = append(w.figures, fig)
}

// runClaimed reports whether some process holds a run of the database in dir.
func runClaimed(dir string) bool {
	db := filepath.Join(dir, "fireact.db")
	if _, err := os.Stat(db); err != nil {
		return false
	}
	s, err := store.Open(context.Background(), db)
	if err != nil {
		return false
	}
	defer s.Close()
	var n int
	err = s.DB().QueryRow(`SELECT count(*) FROM run_owners`).Scan(&n)
	return err == nil && n > 0
}

// lastLine is the last non-empty line of a command's output: its error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// improveKillTrials kills rejection-sampling and GRPO jobs (fireact improve
// and fireact rl, one round on the small demo world) and reruns them: the
// rounds, their sample runs and the final adapter must be those of an
// uninterrupted job.
func (w *faultWorld) improveKillTrials(t *testing.T) {
	d := improvetest.NewWorld(t, demo.SmallConfig().World)
	if _, err := d.Store.DB().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	trials := w.trials
	w.trials = max(1, trials/3)
	defer func() { w.trials = trials }()
	common := []string{"--run", "job", "--dir", "imp", "--base", d.Base, "--lora", d.SFT, "--task", "world", "--small",
		"--corpus", d.Corpus, "--order", "natural", "--train-limit", "4", "--dev-limit", "3", "--rounds", "1", "--k", "2",
		"--temperature", "0.8", "--max-tokens", "48", "--max-turns", "4", "--grammar", "-j", "4", "-t", "1"}
	rs := append(append([]string{"improve"}, common...), "--teacher", improvetest.TeacherRun, "--steps", "4", "--lr", "3e-3",
		"--cutoff", "256", "--batch-tokens", "256", "--targets", "all")
	rl := append(append([]string{"rl"}, common...), "--lr", "1e-4", "--batch-tokens", "512", "--kl", "0.05")
	w.killTrials(t, "improve (rejection sampling)", d.DB, rs, rounds("job", "imp/round-1.lora.gguf"))
	w.killTrials(t, "rl (GRPO)", d.DB, rl, rounds("job", "imp/round-1.lora.gguf"))
}

// rounds summarises an improve job: each round's counts and dev score, each
// sample run's episodes per question, and the last adapter's SHA-256.
func rounds(job, last string) outcome {
	return func(t *testing.T, s *store.Store, dir string) string {
		t.Helper()
		rs, err := s.Rounds(context.Background(), job)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, "round %d %s: %d samples, %d passed, %d kept, dev EM %.3f; ", r.Round, r.Status, r.Samples, r.Passed, r.Kept, r.DevEM)
		}
		runs, err := s.ListRuns(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range runs {
			if strings.HasPrefix(r.Name, job+"/") {
				names = append(names, r.Name)
			}
		}
		sort.Strings(names) // the K sample runs are created concurrently
		for _, n := range names {
			fmt.Fprintf(&b, "%s: %s; ", n, episodes(n)(t, s, dir))
		}
		return b.String() + "adapter sha256 " + fileSHA(t, filepath.Join(dir, last))
	}
}
