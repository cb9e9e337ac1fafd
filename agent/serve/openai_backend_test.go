package serve

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
)

// TestServeAsAgentBackend runs `fireact eval --backend openai` against our own
// server: the agent package's OpenAI backend talks to the real server over HTTP
// (completions for the student's alpaca prompt, with an adapter chosen by model
// name), and every episode lands in the store with all its steps.
func TestServeAsAgentBackend(t *testing.T) {
	ctx := context.Background()
	// The tiny model has no chat template of its own; serve it with chatml.
	f := newFixture(t, func(c *Config) { c.ChatTemplate = "chatml" })
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddCorpusDocs(ctx, []store.CorpusDoc{{Corpus: "wiki", Title: "The Film", Text: "The Film was directed by Ann Lee."}}); err != nil {
		t.Fatal(err)
	}
	for _, completions := range []bool{true, false} {
		llm, err := agent.NewOpenAI(agent.OpenAIOptions{Model: "tiny+a", BaseURL: f.url + "/v1", Key: "unused", Completions: completions, Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		task := &tasks.Static{TaskName: "demo", SplitName: "dev", Scorer: tasks.ScorerFor(tasks.HotpotQA), Questions: []tasks.Question{
			{Index: 0, Text: "Who directed The Film?", Gold: "Ann Lee"},
			{Index: 1, Text: "Where was Ann Lee born?", Gold: "Paris"},
			{Index: 2, Text: "Is The Film a drama?", Gold: "yes"},
		}}
		m := agent.ReAct()
		m.MaxTurns = 3
		a := &agent.Agent{LLM: llm, Search: &agent.LocalSearch{Store: st, Corpus: "wiki"}, Method: m,
			Prompt: agent.Prompt{Format: agent.FormatAlpaca}, Sampling: agent.Sampling{MaxTokens: 24}}
		name := "via-serve-chat"
		if completions {
			name = "via-serve-completions"
		}
		rep, err := agent.RunTask(ctx, agent.RunSpec{Store: st, Task: task, Agent: a, Indices: []int{0, 1, 2}, Concurrency: 3,
			Run: store.Run{Name: name, Kind: store.KindEval, Model: "tiny+a", Method: m.Name, Task: "demo", Split: "dev", Config: "{}"}})
		if err != nil {
			t.Fatal(err)
		}
		eps, err := st.Episodes(ctx, rep.Run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 3 || rep.Errors != 0 {
			t.Fatalf("%s: %d episodes, %d errors", name, len(eps), rep.Errors)
		}
		for _, ep := range eps {
			steps, _ := st.Steps(ctx, ep.ID)
			if len(steps) == 0 || len(steps) != ep.Turns || ep.PromptTokens == 0 {
				t.Fatalf("%s: episode %d has %d steps for %d turns, %d prompt tokens", name, ep.ID, len(steps), ep.Turns, ep.PromptTokens)
			}
		}
	}
}
