package serve

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/agent"

	"github.com/fireact/fireact/store"
)

// TestRealAgentRunner drives /v1/agent/run with the agent package's loop: local
// search over a real corpus, the tiny model (its turns rarely parse; the episode
// is still recorded with every step), and the store.
func TestRealAgentRunner(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddCorpusDocs(ctx, []store.CorpusDoc{
		{Corpus: "wiki", Title: "Ann Lee", Text: "Ann Lee is a film director born in Paris."},
		{Corpus: "wiki", Title: "The Film", Text: "The Film was directed by Ann Lee."},
	}); err != nil {
		t.Fatal(err)
	}
	runner, err := NewAgentRunner(AgentRunnerOptions{Store: st, Corpus: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.AgentRunner = runner })
	for _, req := range []AgentRequest{
		{Model: "tiny", Question: "Who directed The Film?", Gold: "Ann Lee", MaxSteps: 3},
		{Model: "tiny+a", Question: "Where was Ann Lee born?", Method: "cot", Run: "named"},
		{Model: "tiny", Question: "Who directed The Film?", Method: "reflexion", Noise: 0.5, NoiseKind: "none", NoiseSeed: 3, MaxSteps: 2, Run: "noisy"},
	} {
		status, resp, err := postAgent(ctx, f.url, req)
		if err != nil {
			t.Fatal(err)
		}
		if status != 200 {
			t.Fatalf("%+v: status %d", req, status)
		}
		ep, err := st.Episode(ctx, resp.EpisodeID)
		if err != nil {
			t.Fatalf("episode %d: %v", resp.EpisodeID, err)
		}
		steps, err := st.Steps(ctx, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(steps) != len(resp.Steps) || len(steps) == 0 || ep.RunID != resp.RunID {
			t.Fatalf("%d stored steps, %d returned (run %d vs %d)", len(steps), len(resp.Steps), ep.RunID, resp.RunID)
		}
		if req.Gold != "" && resp.EM == nil {
			t.Fatal("no EM with a gold answer")
		}
	}
	if status, _, err := postAgent(ctx, f.url, AgentRequest{Model: "tiny", Question: "q", Tools: []string{"telepathy"}}); err != nil || status != 400 {
		t.Fatalf("unknown tool: status %d err %v, want 400", status, err)
	}
}

// TestAgentRunnerConfiguration checks the agent endpoint's noise and oracle
// options and that one run holds one configuration: requests with other
// settings and no run name land in other runs, and a named run refuses a
// request with another configuration (400).
func TestAgentRunnerConfiguration(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddCorpusDocs(ctx, []store.CorpusDoc{{Corpus: "wiki", Title: "Ann Lee", Text: "Ann Lee is a film director."}}); err != nil {
		t.Fatal(err)
	}
	runner, err := NewAgentRunner(AgentRunnerOptions{Store: st, Corpus: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) { c.AgentRunner = runner })
	post := func(req AgentRequest) (int, AgentResponse) {
		t.Helper()
		status, resp, err := postAgent(ctx, f.url, req)
		if err != nil {
			t.Fatal(err)
		}
		return status, resp
	}
	q := AgentRequest{Model: "tiny", Question: "Who is Ann Lee?", Gold: "a director", Method: "reflexion", MaxSteps: 2}
	// Random noise draws recorded observations; with none recorded it is refused.
	for _, bad := range []AgentRequest{{NoiseKind: "swap", Noise: 0.5}, {NoiseKind: "random", Noise: 0.5}} {
		r := q
		r.Noise, r.NoiseKind = bad.Noise, bad.NoiseKind
		if status, _ := post(r); status != 400 {
			t.Fatalf("noise kind %q: status %d, want 400", bad.NoiseKind, status)
		}
	}
	status, first := post(q)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	run, err := st.Run(ctx, first.RunID)
	if err != nil {
		t.Fatal(err)
	}
	cfg, ok := agent.ParseRunConfig(run.Config)
	if !ok || cfg.OracleRetry || cfg.Method != "reflexion" || cfg.MaxTurns != 2 {
		t.Fatalf("recorded config %s: want reflexion without oracle retry, 2 turns", run.Config)
	}
	warm := float32(0.7)
	other := q
	other.Temperature, other.Question = &warm, "Who directed The Film?"
	status, second := post(other)
	if status != 200 || second.RunID == first.RunID {
		t.Fatalf("status %d, run %d after run %d: another temperature must start another run", status, second.RunID, first.RunID)
	}
	oracle := q
	oracle.OracleRetry, oracle.Run = true, run.Name
	status, _ = post(oracle)
	if status != 400 {
		t.Fatalf("oracle retry in run %s recorded without it: status %d, want 400", run.Name, status)
	}
	oracle.Run = ""
	if status, resp := post(oracle); status != 200 || resp.RunID == first.RunID {
		t.Fatalf("status %d run %d", status, resp.RunID)
	} else if r, _ := st.Run(ctx, resp.RunID); !strings.Contains(r.Config, `"oracle_retry":true`) {
		t.Fatalf("oracle run config %s", r.Config)
	}
}
