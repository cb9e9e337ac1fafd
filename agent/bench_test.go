package agent

import (
	"context"
	"testing"
	"time"

	"github.com/fireact/fireact/store"
)

// benchRun answers 32 questions with the tiny model (ReAct, built-in few-shot
// prompt of realistic length, grammar so every turn parses) and returns the
// elapsed time and the prompt tokens the engine decoded per question.
func benchRun(b *testing.B, model string, conc int, noReuse, grammar bool) (time.Duration, float64) {
	const n = 32
	eng := newEngineFor(b, model, conc, noReuse)
	s := newStore(b)
	fillCorpus(b, s, "wiki", n)
	task := testTask(n)
	// Four turns keep the benchmark short; an untrained model rarely
	// finishes early, so every question costs about the same.
	m := ReAct()
	m.MaxTurns = 4
	a := &Agent{LLM: &LocalLLM{Engine: eng}, Search: &Cache{Inner: &LocalSearch{Store: s, Corpus: "wiki"}, Store: s, Backend: "local:wiki"},
		Method: m, Prompt: Prompt{Format: FormatFewShot, FewShot: FewShotPrompt("hotpotqa", ReAct())},
		Sampling: Sampling{Temperature: 0.8, Seed: 11, MaxTokens: 64}, Grammar: grammar, MaxInvalid: 4}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	start := time.Now()
	rep, err := RunTask(context.Background(), RunSpec{Store: s, Task: task, Agent: a, Indices: idx, Concurrency: conc,
		Run: store.Run{Kind: store.KindEval, Task: task.Name(), Split: task.Split(), Method: "react"}})
	if err != nil || rep.Errors > 0 {
		eps, _ := s.Episodes(context.Background(), rep.Run.ID)
		for _, ep := range eps {
			if ep.Error != "" {
				b.Fatalf("run: %v (%d errors): %s", err, rep.Errors, ep.Error)
			}
		}
		b.Fatalf("run: %v (%d errors)", err, rep.Errors)
	}
	return time.Since(start), float64(eng.Stats().PromptDecoded) / n
}

// BenchmarkLocalAgent measures questions per minute with all 32 questions in
// flight against one at a time, and prompt tokens decoded per question with
// and without prefix reuse (goals: >= 3x and >= 80% fewer).
func BenchmarkLocalAgent(b *testing.B) {
	model := tinyModel(b)
	for i := 0; i < b.N; i++ {
		serial, _ := benchRun(b, model, 1, false, true)
		batched, reused := benchRun(b, model, 32, false, true)
		_, full := benchRun(b, model, 32, true, true)
		qpmSerial := 32 / serial.Minutes()
		qpmBatched := 32 / batched.Minutes()
		b.ReportMetric(qpmSerial, "q/min-serial")
		b.ReportMetric(qpmBatched, "q/min-batched")
		b.ReportMetric(qpmBatched/qpmSerial, "speedup")
		b.ReportMetric(full, "prompt-decoded/q-noreuse")
		b.ReportMetric(reused, "prompt-decoded/q-reuse")
		b.ReportMetric(1-reused/full, "decoded-saved")
	}
}
