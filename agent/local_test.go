package agent

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// TestLocalLoop drives the whole loop on a tiny random GGUF model through the
// batched engine, with local search through the tool cache, and checks that
// every episode lands in the store with every step.
func TestLocalLoop(t *testing.T) {
	tests := []struct {
		name    string
		method  Method
		format  Format
		grammar bool
	}{
		{"react grammar fewshot", ReAct(), FormatFewShot, true},
		{"reflexion grammar alpaca", Reflexion(), FormatAlpaca, true},
		{"cot grammar", CoT(), FormatFewShot, true},
		{"io grammar", IO(), FormatFewShot, true},
		{"react free text", ReAct(), FormatFewShot, false},
	}
	ctx := context.Background()
	eng := newEngine(t, 4, false)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			task := testTask(4)
			fillCorpus(t, s, "wiki", 4)
			search := &Cache{Inner: &LocalSearch{Store: s, Corpus: "wiki"}, Store: s, Backend: "local:wiki"}
			a := &Agent{LLM: &LocalLLM{Engine: eng}, Search: search, Method: tc.method,
				Prompt:   Prompt{Format: tc.format, FewShot: FewShotPrompt("hotpotqa", tc.method)},
				Sampling: Sampling{Temperature: 0.8, Seed: 7, MaxTokens: 48}, Grammar: tc.grammar}
			rep, err := RunTask(ctx, RunSpec{Store: s, Task: task, Agent: a, Indices: []int{0, 1, 2, 3}, Concurrency: 4,
				Run: store.Run{Name: "t", Kind: store.KindEval, Task: task.Name(), Split: task.Split(), Method: tc.method.Name}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Ran != 4 || rep.Errors != 0 || rep.Run.Status != store.StatusDone {
				t.Fatalf("report %+v", rep)
			}
			eps, err := s.Episodes(ctx, rep.Run.ID)
			if err != nil || len(eps) != 4 {
				t.Fatalf("episodes %d, %v", len(eps), err)
			}
			for _, ep := range eps {
				steps, err := s.Steps(ctx, ep.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(steps) == 0 || len(steps) != ep.Turns && ep.Turns != 0 {
					t.Fatalf("episode %d: %d steps, turns %d", ep.ID, len(steps), ep.Turns)
				}
				if len(steps) > tc.method.MaxTurns {
					t.Fatalf("episode %d: %d steps > budget %d", ep.ID, len(steps), tc.method.MaxTurns)
				}
				for _, st := range steps {
					if st.Raw == "" || st.Observation == "" {
						t.Fatalf("step %+v lacks raw text or observation", st)
					}
					if tc.grammar && st.Action != "search" && st.Action != "finish" {
						t.Fatalf("grammar turn did not parse: %+v", st)
					}
				}
				last := steps[len(steps)-1]
				switch ep.Status {
				case store.EpisodeDone:
					if last.Action != "finish" {
						t.Fatalf("done episode ends with %+v", last)
					}
				case store.EpisodeUnfinished:
					if tc.grammar && len(steps) != tc.method.MaxTurns {
						t.Fatalf("grammar episode unfinished after %d steps", len(steps))
					}
				default:
					t.Fatalf("episode status %q (%s)", ep.Status, ep.Error)
				}
				if ep.PromptTokens == 0 || ep.GeneratedTokens == 0 {
					t.Fatalf("episode %d has no token counts", ep.ID)
				}
				tr, err := s.Trajectory(ctx, ep.ID)
				if err != nil {
					t.Fatal(err)
				}
				if tr.Method != tc.method.Name || len(tr.Steps) != len(steps) {
					t.Fatalf("trajectory %+v", tr)
				}
			}
			if tc.grammar && tc.method.Tools {
				st, err := s.CacheStats(ctx, "local:wiki")
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("cache %+v", st)
			}
		})
	}
}

// TestSolveStreams checks that OnText sees the trajectory as it is produced.
func TestSolveStreams(t *testing.T) {
	eng := newEngine(t, 2, false)
	s := newStore(t)
	fillCorpus(t, s, "wiki", 2)
	a := &Agent{LLM: &LocalLLM{Engine: eng}, Search: &LocalSearch{Store: s, Corpus: "wiki"}, Method: ReAct(),
		Prompt: Prompt{Format: FormatAlpaca}, Sampling: Sampling{Temperature: 0.8, Seed: 3}, Grammar: true}
	var streamed string
	res, err := a.Solve(context.Background(), Query{Text: "Where is the number 1 museum?", OnText: func(s string) { streamed += s }})
	if err != nil {
		t.Fatal(err)
	}
	body := trajectory.Render(res.Trajectory)
	// Raw streamed bytes read as JSON strings do (one U+FFFD per invalid byte),
	// which is how the engine's final text spells invalid UTF-8 too.
	b, _ := json.Marshal(streamed)
	json.Unmarshal(b, &streamed)
	if streamed != res.Trajectory.Question+"\n"+body {
		t.Fatalf("streamed\n%q\nwant\n%q", streamed, res.Trajectory.Question+"\n"+body)
	}
}
