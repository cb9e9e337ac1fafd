package serve

import (
	"context"
	"path/filepath"
	"testing"

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
		{Model: "tiny", Question: "Who directed The Film?", Method: "reflexion", Noise: 0.5, NoiseSeed: 3, MaxSteps: 2, Run: "noisy"},
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
