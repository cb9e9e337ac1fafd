package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
)

// RunSpec describes a run of an agent over questions of a task.
type RunSpec struct {
	Store *store.Store
	Task  tasks.Task
	Agent *Agent
	// Run is the run record to create; when a run named Run.Name exists (or
	// Run.Name is the id of one), that run is resumed instead.
	Run store.Run
	// Indices are the planned question indices, in order (tasks.Select).
	Indices []int
	// Concurrency is the number of questions in flight (0: 1).
	Concurrency int
	// Progress, when set, is called after every recorded episode (from one
	// goroutine at a time).
	Progress func(Progress)
}

// Progress is the state of a run after one more episode.
type Progress struct {
	RunID   int64
	Done    int // episodes recorded by this invocation
	Total   int // episodes this invocation has to do
	Skipped int // already finished before (resume)
	Errors  int
	// EM is the mean EM over this invocation's finished episodes.
	EM           float64
	Elapsed      time.Duration
	ETA          time.Duration
	TokensPerSec float64 // generated tokens per second
	// Last is the episode just recorded.
	Last         store.Episode
	LastQuestion store.Question
}

// Report is the outcome of RunTask.
type Report struct {
	Run     store.Run
	Resumed bool
	Planned int
	Skipped int
	Ran     int
	Errors  int
	Elapsed time.Duration
	Summary store.RunSummary
}

// RunTask runs the agent over the planned questions that the run has no
// finished episode for, Concurrency at a time, recording each episode as it
// ends. Cancelling ctx stops it cleanly: episodes in flight are dropped (a
// resumed run redoes them), recorded ones stay, and the run is marked
// interrupted. An episode that fails (LLM or tool error) is recorded as an
// error episode, which a resumed run retries; the others go on.
func RunTask(ctx context.Context, spec RunSpec) (Report, error) {
	s := spec.Store
	// EM is a mean over the questions asked (FireAct's sum(rs) / len(idxs)), so
	// the run records how many were planned; a resume that plans more raises it.
	spec.Run.Asked = max(spec.Run.Asked, len(spec.Indices))
	run, resumed, err := OpenRun(ctx, s, spec.Run)
	if err != nil {
		return Report{}, err
	}
	// One process per run: a second one would solve the same questions again.
	claim, err := s.ClaimRun(ctx, run.ID)
	if err != nil {
		return Report{Run: run}, fmt.Errorf("agent: %w", err)
	}
	defer claim.Release()
	if run.Asked < spec.Run.Asked {
		if err := s.SetRunAsked(ctx, run.ID, spec.Run.Asked); err != nil {
			return Report{}, fmt.Errorf("agent: resume: %w", err)
		}
		run.Asked = spec.Run.Asked
	}
	rep := Report{Run: run, Resumed: resumed, Planned: len(spec.Indices)}
	qs := make([]store.Question, 0, len(spec.Indices))
	for _, i := range spec.Indices {
		if i < 0 || i >= spec.Task.Len() {
			return rep, fmt.Errorf("agent: question index %d out of range (task has %d)", i, spec.Task.Len())
		}
		q, err := StoreQuestion(spec.Task, spec.Task.Question(i))
		if err != nil {
			return rep, err
		}
		qs = append(qs, q)
	}
	if err := s.UpsertQuestions(ctx, qs); err != nil {
		return rep, fmt.Errorf("agent: record questions: %w", err)
	}
	byIndex := make(map[int]store.Question, len(qs))
	for _, q := range qs {
		byIndex[q.Index] = q
	}
	todo, err := s.MissingIndices(ctx, run.ID, spec.Indices)
	if err != nil {
		return rep, fmt.Errorf("agent: resume: %w", err)
	}
	rep.Skipped = len(spec.Indices) - len(todo)

	start := time.Now()
	var (
		mu      sync.Mutex
		emSum   float64
		nScored int
		genTok  int
		firstDB error
	)
	work := make(chan int)
	var wg sync.WaitGroup
	conc := max(spec.Concurrency, 1)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idx := range work {
				q := byIndex[idx]
				res, serr := spec.Agent.Solve(ctx, Query{Text: q.Text, Gold: q.Gold, Task: q.Task,
					Key:   q.Task + "/" + q.Split + "/" + strconv.Itoa(q.Index),
					Score: spec.Task.Score})
				if ctx.Err() != nil {
					continue // interrupted: not a result; the resume redoes it
				}
				ep, err := Record(ctx, s, run.ID, q.ID, res, serr)
				mu.Lock()
				if err != nil {
					if firstDB == nil && ctx.Err() == nil {
						firstDB = err
					}
					mu.Unlock()
					continue
				}
				rep.Ran++
				genTok += res.Usage.GeneratedTokens
				if res.Status == store.EpisodeError {
					rep.Errors++
				} else {
					emSum += res.Scores.EM
					nScored++
				}
				if spec.Progress != nil {
					el := time.Since(start)
					p := Progress{RunID: run.ID, Done: rep.Ran, Total: len(todo), Skipped: rep.Skipped,
						Errors: rep.Errors, Elapsed: el, Last: ep, LastQuestion: q}
					if nScored > 0 {
						p.EM = emSum / float64(nScored)
					}
					if rep.Ran > 0 {
						p.ETA = time.Duration(float64(el) / float64(rep.Ran) * float64(len(todo)-rep.Ran))
					}
					if el > 0 {
						p.TokensPerSec = float64(genTok) / el.Seconds()
					}
					spec.Progress(p)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, idx := range todo {
		mu.Lock()
		stop := firstDB != nil
		mu.Unlock()
		if stop {
			break
		}
		select {
		case work <- idx:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	rep.Elapsed = time.Since(start)

	// The final status is written with a fresh context: the run's own may be
	// cancelled, and "interrupted" must still land.
	final := context.WithoutCancel(ctx)
	status := store.StatusDone
	switch {
	case ctx.Err() != nil:
		status = store.StatusInterrupted
	case firstDB != nil || rep.Errors > 0:
		status = store.StatusFailed
	}
	if err := s.SetRunStatus(final, run.ID, status); err != nil {
		return rep, fmt.Errorf("agent: set run status: %w", err)
	}
	run.Status = status
	rep.Run = run
	if sum, err := s.Summary(final, run.ID); err == nil {
		rep.Summary = sum
	}
	switch {
	case ctx.Err() != nil:
		return rep, fmt.Errorf("agent: run %d interrupted after %d episodes (resume to finish): %w", run.ID, rep.Ran, ctx.Err())
	case firstDB != nil:
		return rep, firstDB
	}
	return rep, nil
}

// ErrConfigMismatch is wrapped by OpenRun's error when the run to resume was
// recorded with another configuration.
var ErrConfigMismatch = errors.New("run configuration mismatch")

// OpenRun creates the run r, or finds the run to resume: the one named r.Name,
// or with id r.Name when that is a number. A resumed run must match r's kind,
// task, split and method, and, when r.Config is a RunConfig, its recorded
// configuration (CheckResume), so that one run never mixes episodes of two
// models, prompts or settings; its status is set back to running.
func OpenRun(ctx context.Context, s *store.Store, r store.Run) (store.Run, bool, error) {
	if r.Name != "" {
		old, err := s.RunByName(ctx, r.Name)
		if errors.Is(err, store.ErrNotFound) {
			if id, perr := strconv.ParseInt(r.Name, 10, 64); perr == nil {
				old, err = s.Run(ctx, id)
			}
		}
		switch {
		case err == nil:
			if old.Kind != r.Kind || old.Task != r.Task || old.Split != r.Split || old.Method != r.Method {
				return store.Run{}, false, fmt.Errorf("agent: %w: run %q (id %d) is a %s %s/%s %s run; cannot resume it as %s %s/%s %s",
					ErrConfigMismatch, r.Name, old.ID, old.Kind, old.Task, old.Split, old.Method, r.Kind, r.Task, r.Split, r.Method)
			}
			if now, ok := ParseRunConfig(r.Config); ok {
				if err := CheckResume(old.Config, now); err != nil {
					return store.Run{}, false, fmt.Errorf("agent: %w: cannot resume run %q (id %d): %w; a new run name starts a new run", ErrConfigMismatch, r.Name, old.ID, err)
				}
			}
			if err := s.SetRunStatus(ctx, old.ID, store.StatusRunning); err != nil {
				return store.Run{}, false, fmt.Errorf("agent: resume run %d: %w", old.ID, err)
			}
			old.Status = store.StatusRunning
			return old, true, nil
		case !errors.Is(err, store.ErrNotFound):
			return store.Run{}, false, fmt.Errorf("agent: find run %q: %w", r.Name, err)
		}
		if _, perr := strconv.ParseInt(r.Name, 10, 64); perr == nil {
			return store.Run{}, false, fmt.Errorf("agent: no run with id %s (numeric names are run ids)", r.Name)
		}
	}
	r.Status = store.StatusRunning
	id, err := s.CreateRun(ctx, &r)
	if err != nil {
		return store.Run{}, false, fmt.Errorf("agent: create run: %w", err)
	}
	r.ID = id
	return r, false, nil
}
