package world

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

func worldStore(t *testing.T, w *World) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	docs := w.Docs()
	for i := range docs {
		docs[i].Corpus = "world"
	}
	if err := s.AddCorpusDocs(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOracleSolvesWithRealSearch runs the oracle teacher in the real agent loop
// with the real local search tool: it must answer (nearly) every question, and its
// trajectories must have the method's shape.
func TestOracleSolvesWithRealSearch(t *testing.T) {
	w := New(DefaultConfig())
	s := worldStore(t, w)
	for _, m := range []agent.Method{agent.ReAct(), agent.CoT(), agent.Reflexion()} {
		// A teacher: Reflexion may use the gold answer to retry.
		a := &agent.Agent{LLM: NewOracle(w), Search: &agent.LocalSearch{Store: s, Corpus: "world"}, Method: m,
			Prompt: agent.Prompt{Format: agent.FormatAlpaca}, OracleRetry: true}
		em, reflections, searches := 0.0, 0, 0
		qs := w.Train[:60]
		for _, q := range qs {
			r, err := a.Solve(context.Background(), agent.Query{Text: q.Text, Gold: q.Answer})
			if err != nil {
				t.Fatal(err)
			}
			em += r.Scores.EM
			text := trajectory.Render(r.Trajectory)
			if strings.Contains(text, "reflection") {
				reflections++
			}
			if strings.Contains(text, "did not return") {
				t.Errorf("%s: the oracle re-searched with clean tools:\n%s", m.Name, text)
			}
			searches += strings.Count(text, "Action: search[")
		}
		em /= float64(len(qs))
		t.Logf("%s: EM %.2f, %d reflections, %.1f searches/question", m.Name, em, reflections, float64(searches)/float64(len(qs)))
		if em < 0.95 {
			t.Errorf("%s: oracle EM %.2f < 0.95", m.Name, em)
		}
		switch m.Name {
		case trajectory.MethodCoT:
			if searches != 0 {
				t.Errorf("CoT searched %d times", searches)
			}
		case trajectory.MethodReflexion:
			if reflections == 0 {
				t.Error("no Reflexion trajectory reflects")
			}
		default:
			if searches < 2*len(qs) {
				t.Errorf("ReAct made only %d searches for %d two-hop questions", searches, len(qs))
			}
		}
	}
}

// TestReflexionRetryNeedsOracle checks that Reflexion retries a wrong answer
// ("Answer is incorrect.") only with OracleRetry: knowing the answer is wrong
// takes the gold answer, which a student's evaluation must not use.
func TestReflexionRetryNeedsOracle(t *testing.T) {
	w := New(DefaultConfig())
	s := worldStore(t, w)
	o := NewOracle(w)
	o.WrongFirst = 1 // every first answer is wrong
	for _, oracle := range []bool{false, true} {
		a := &agent.Agent{LLM: o, Search: &agent.LocalSearch{Store: s, Corpus: "world"}, Method: agent.Reflexion(),
			Prompt: agent.Prompt{Format: agent.FormatAlpaca}, OracleRetry: oracle}
		retried, em := 0, 0.0
		qs := w.Dev[:10]
		for _, q := range qs {
			r, err := a.Solve(context.Background(), agent.Query{Text: q.Text, Gold: q.Answer})
			if err != nil {
				t.Fatal(err)
			}
			em += r.Scores.EM
			for _, st := range r.Trajectory.Steps {
				if st.Observation == "Answer is incorrect." {
					retried++
				}
			}
		}
		t.Logf("oracle retry %v: %d retries, EM %.2f", oracle, retried, em/float64(len(qs)))
		if oracle && (retried != len(qs) || em < float64(len(qs))-1) {
			t.Errorf("with oracle retry: %d retries over %d questions, EM sum %.0f; want a retry each and the right answer after it", retried, len(qs), em)
		}
		if !oracle && (retried != 0 || em != 0) {
			t.Errorf("without oracle retry: %d retries, EM sum %.0f; want none and every (wrong) first answer kept", retried, em)
		}
	}
}
