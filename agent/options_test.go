package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
)

// runSetup is one invocation's LLM, agent and run record, as eval builds them.
func runSetup(t *testing.T, s *store.Store, lo LLMOptions, ao AgentOptions, so SearchOptions, name string) (*LLMSetup, *Agent, RunConfig, store.Run) {
	t.Helper()
	search, err := NewSearch(context.Background(), s, so)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAgent(ao, search)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := NewLLM(lo, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.Close)
	cfg := NewRunConfig(ls, a, so)
	return ls, a, cfg, cfg.StoreRun(name, store.KindEval, "hotpotqa", "test")
}

// TestResumeChecksConfiguration runs one question, then resumes the run with
// changed settings: each change that shapes results is refused, naming its
// field, while concurrency and threads are not compared and a legacy run
// without a recorded RunConfig is refused.
func TestResumeChecksConfiguration(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	task := testTask(2)
	fillCorpus(t, s, "wiki", 2)
	lo := LLMOptions{Backend: BackendLocal, Model: tinyModel(t), Concurrency: 2, Threads: 1}
	ao := AgentOptions{Method: "react", Format: "alpaca", Task: "hotpotqa", MaxTurns: 2, Grammar: true,
		Sampling: Sampling{Temperature: 0.8, MaxTokens: 24, Seed: 3}}
	so := SearchOptions{Backend: SearchLocal, Corpus: "wiki"}
	ls, a, cfg, run := runSetup(t, s, lo, ao, so, "r")
	rep, err := RunTask(ctx, RunSpec{Store: s, Task: task, Agent: a, Indices: []int{0}, Concurrency: ls.Concurrency, Run: run})
	if err != nil {
		t.Fatal(err)
	}
	// The record is the marshalled struct, identity included.
	got, ok := ParseRunConfig(rep.Run.Config)
	if !ok || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("recorded config %+v (ok %v), want %+v", got, ok, cfg)
	}
	if len(cfg.ModelID) != 64 || cfg.PromptHash == "" || rep.Run.ModelHash != cfg.ModelID {
		t.Fatalf("model identity: config %q, run %q, prompt %q", cfg.ModelID, rep.Run.ModelHash, cfg.PromptHash)
	}

	other := filepath.Join(t.TempDir(), "other.gguf")
	if err := modelgen.WriteLlama(other, modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 2048, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	promptFile := filepath.Join(t.TempDir(), "prompt.txt")
	if err := os.WriteFile(promptFile, []byte("Solve a question answering task.\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*LLMOptions, *AgentOptions, *SearchOptions)
		field string // "" resumes
	}{
		{"other model", func(l *LLMOptions, _ *AgentOptions, _ *SearchOptions) { l.Model = other }, "model_id"},
		{"temperature", func(_ *LLMOptions, a *AgentOptions, _ *SearchOptions) { a.Sampling.Temperature = 0.5 }, "temperature"},
		{"prompt", func(_ *LLMOptions, a *AgentOptions, _ *SearchOptions) { a.PromptFile = promptFile }, "prompt_hash"},
		{"max turns", func(_ *LLMOptions, a *AgentOptions, _ *SearchOptions) { a.MaxTurns = 3 }, "max_turns"},
		{"noise", func(_ *LLMOptions, _ *AgentOptions, o *SearchOptions) { o.Noise, o.NoiseKind = 0.5, NoiseNone }, "noise"},
		{"search", func(_ *LLMOptions, _ *AgentOptions, o *SearchOptions) { o.Backend = SearchNone }, "search"},
		{"concurrency and threads", func(l *LLMOptions, _ *AgentOptions, _ *SearchOptions) { l.Concurrency, l.Threads = 1, 2 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, a2, o := lo, ao, so
			tc.edit(&l, &a2, &o)
			_, _, _, run := runSetup(t, s, l, a2, o, "r")
			_, resumed, err := OpenRun(ctx, s, run)
			if tc.field == "" {
				if err != nil || !resumed {
					t.Fatalf("resumed %v, %v; want the run resumed", resumed, err)
				}
				return
			}
			if !errors.Is(err, ErrConfigMismatch) || !strings.Contains(err.Error(), tc.field+" differs") {
				t.Fatalf("err %v; want a mismatch naming %s", err, tc.field)
			}
		})
	}

	// A run recorded by an older fireact (a loose map of flags) cannot be
	// checked, so it is not resumed either.
	if _, err := s.CreateRun(ctx, &store.Run{Name: "legacy", Kind: store.KindEval, Task: "hotpotqa", Split: "test",
		Method: "react", Config: `{"method":"react","temperature":0.8}`}); err != nil {
		t.Fatal(err)
	}
	run.Name = "legacy"
	if _, _, err := OpenRun(ctx, s, run); !errors.Is(err, ErrConfigMismatch) {
		t.Fatalf("legacy run: %v; want it refused", err)
	}
}

// TestContextSizing checks that a question's KV share comes from its prompt
// and budget, and that an explicit total that cannot hold it is refused
// before any episode runs.
func TestContextSizing(t *testing.T) {
	a, err := NewAgent(AgentOptions{Method: "react", Format: "fewshot", Task: "hotpotqa", MaxTurns: 11,
		Sampling: Sampling{MaxTokens: 100}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := NewLLM(LLMOptions{Model: tinyModel(t), Concurrency: 2, Threads: 1}, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	eng := ls.LLM.(*LocalLLM).Engine
	prompt, _ := a.Prompt.build(a.Method, turnInput{})
	toks, err := eng.Model().Tokenize(prompt, llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	want := len(toks) + QuestionTokens + 11*(100+ObservationTokens)
	if ls.PerRequestKV != want || eng.SeqContext() < want {
		t.Fatalf("per-request KV %d (engine %d), want %d = prompt %d + question + 11 turns", ls.PerRequestKV, eng.SeqContext(), want, len(toks))
	}
	if _, err := NewLLM(LLMOptions{Model: tinyModel(t), Concurrency: 2, Threads: 1, KV: 2 * (want - 1)}, a); err == nil ||
		!strings.Contains(err.Error(), "may need") {
		t.Fatalf("KV too small for an episode: %v; want it refused up front", err)
	}
}

// fewShotOf returns a few-shot text that makes a's first prompt for question
// exactly n tokens long (or the shortest longer one).
func fewShotOf(t *testing.T, m *llama.Model, a *Agent, question string, n int) string {
	t.Helper()
	words := ""
	for {
		a.Prompt.FewShot = words + "\n\n"
		p, _ := a.Prompt.build(a.Method, turnInput{question: question})
		toks, err := m.Tokenize(p, llama.TokenizeOptions{AddSpecial: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) >= n {
			return a.Prompt.FewShot
		}
		words += " the"
	}
}

// TestOutOfContextIsAWrongError runs episodes that cannot fit the engine's
// cells, one whose prompt is too long and one whose turn runs into the end of
// them: each must be stored as an error saying so, and the run's EM must count
// it as wrong rather than leave it out.
func TestOutOfContextIsAWrongError(t *testing.T) {
	ctx := context.Background()
	m, err := llama.LoadModel(tinyModel(t), llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := llama.NewEngine(m, llama.EngineOptions{PerRequest: 256, Context: llama.ContextOptions{NSeqMax: 2, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.SeqContext() != 256 {
		t.Fatalf("engine gives a request %d cells, want 256", e.SeqContext())
	}
	s := newStore(t)
	task := testTask(1)
	q0 := task.Question(0).Text
	a := &Agent{LLM: &LocalLLM{Engine: e}, Method: ReAct(), Prompt: Prompt{Format: FormatFewShot},
		Sampling: Sampling{Temperature: 1, Seed: 1, MaxTokens: 400}}

	// A turn that runs into the end of the cells: 4 of them left after the prompt.
	a.Prompt.FewShot = fewShotOf(t, m, a, q0, 252)
	res, err := a.Solve(ctx, Query{Text: q0, Gold: "city0"})
	if !errors.Is(err, ErrOutOfContext) || res.Status != store.EpisodeError {
		t.Fatalf("turn past the cells: status %q, err %v; want an out-of-context error", res.Status, err)
	}

	// A prompt that does not fit, through a run into the store.
	a.Prompt.FewShot = fewShotOf(t, m, a, q0, 300)
	rep, err := RunTask(ctx, RunSpec{Store: s, Task: task, Agent: a, Indices: []int{0}, Concurrency: 2,
		Run: store.Run{Name: "ooc", Kind: store.KindEval, Task: task.Name(), Split: task.Split(), Method: "react"}})
	if err != nil {
		t.Fatal(err)
	}
	eps, err := s.Episodes(ctx, rep.Run.ID)
	if err != nil || len(eps) != 1 {
		t.Fatalf("episodes %d, %v", len(eps), err)
	}
	if ep := eps[0]; ep.Status != store.EpisodeError || !strings.HasPrefix(ep.Error, store.OutOfContext) {
		t.Fatalf("episode status %q error %q; want an out-of-context error", ep.Status, ep.Error)
	}

	// Beside one right answer, the out-of-context episode makes EM 1/2.
	qs := []store.Question{AdhocQuestion("what is right?", "yes")}
	if err := s.UpsertQuestions(ctx, qs); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertEpisode(ctx, &store.Episode{RunID: rep.Run.ID, QuestionID: qs[0].ID, Status: store.EpisodeDone, EM: 1, F1: 1}, nil); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Summary(ctx, rep.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sum.EM != 0.5 {
		t.Fatalf("EM %.3f, want 1/2: an out-of-context episode counts as wrong", sum.EM)
	}
}
