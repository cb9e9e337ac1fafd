package serve

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// AgentRunnerOptions configure the agent runner of `fireact serve`.
type AgentRunnerOptions struct {
	// Store records every episode (required).
	Store *store.Store
	// Search is the default search backend ("local", "serpapi", "replay",
	// "none"; default "local") and Corpus the local backend's corpus.
	Search     string
	Corpus     string
	SerpAPIURL string
	// Run is the run episodes are recorded in when a request names none; the
	// model name is appended ("serve-tiny+react").
	Run string
	// AdapterFormats maps adapter file paths to the prompt format they were
	// trained on (recorded in the adapter by fireact finetune): a request for
	// BASE+ADAPTER that names no format is prompted so. Adapters not listed
	// get alpaca, FireAct's fine-tuning format.
	AdapterFormats map[string]string
}

// NewAgentRunner returns the AgentRunner that serves /v1/agent/run with the real
// agent loop: the request's method and prompt format, the chosen search tool
// behind the store's cache (and noise, when asked), the backend's model and
// adapters, and the episode recorded in the store.
func NewAgentRunner(o AgentRunnerOptions) (AgentRunner, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("serve: the agent runner needs a store")
	}
	if o.Search == "" {
		o.Search = agent.SearchLocal
	}
	if o.Run == "" {
		o.Run = "serve"
	}
	return func(ctx context.Context, b Backend, req AgentRequest) (AgentResponse, error) {
		return runAgent(ctx, o, b, req)
	}, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidAgentRequest}, args...)...)
}

func runAgent(ctx context.Context, o AgentRunnerOptions, b Backend, req AgentRequest) (AgentResponse, error) {
	var resp AgentResponse
	methodName := req.Method
	if methodName == "" {
		methodName = trajectory.MethodReAct
	}
	// A fine-tuned student is prompted like its training text (alpaca); a base
	// model needs the few-shot examples.
	formatName := req.Format
	if formatName == "" {
		formatName = string(agent.FormatFewShot)
		if len(b.Adapters) > 0 {
			formatName = string(agent.FormatAlpaca)
			if f := o.AdapterFormats[b.Adapters[0].Adapter.Path()]; f != "" {
				formatName = f
			}
		}
	}
	backend := o.Search
	if len(req.Tools) > 1 {
		return resp, invalid("one search tool at most, got %v", req.Tools)
	}
	if len(req.Tools) == 1 {
		backend = strings.ToLower(req.Tools[0])
	}
	if req.Noise < 0 || req.Noise > 1 {
		return resp, invalid("noise %g is not a probability", req.Noise)
	}
	if _, err := agent.ParseNoiseKind(req.NoiseKind); err != nil {
		return resp, invalid("%v", err)
	}
	so := agent.SearchOptions{Backend: backend, Corpus: o.Corpus, BaseURL: o.SerpAPIURL,
		Noise: req.Noise, NoiseKind: req.NoiseKind, Seed: req.NoiseSeed}
	search, err := agent.NewSearch(ctx, o.Store, so)
	if err != nil {
		return resp, invalid("%v", err)
	}
	ao := agent.AgentOptions{Method: methodName, MaxTurns: req.MaxSteps, Format: formatName, Task: req.Task,
		OracleRetry: req.OracleRetry}
	if req.Temperature != nil {
		ao.Sampling.Temperature = float64(*req.Temperature)
	}
	if req.Seed != nil {
		ao.Sampling.Seed = *req.Seed
	}
	a, err := agent.NewAgent(ao, search)
	if err != nil {
		return resp, invalid("%v", err)
	}
	a.LLM = &agent.LocalLLM{Engine: b.Engine, Adapters: b.Adapters, ChatTemplate: b.ChatTemplate}
	cfg := agent.NewRunConfig(nil, a, so)
	// The served name stands for base and adapter (hashing a model file per
	// request would cost more than the request).
	cfg.Backend, cfg.Model, cfg.ModelID = agent.BackendLocal, b.Model, b.Model
	runName := req.Run
	if runName == "" {
		// Requests with other settings go to other runs: one run, one
		// configuration.
		runName = o.Run + "-" + b.Model + "-" + a.Method.Name + "-" + agent.TextHash(cfg.JSON())[:8]
	}
	run, _, err := agent.OpenRun(ctx, o.Store, store.Run{Name: runName, Kind: store.KindEval, Model: b.Model, Method: a.Method.Name,
		Task: agent.AdhocTask, Split: agent.AdhocSplit, Noise: req.Noise, Seed: req.NoiseSeed, Config: cfg.JSON()})
	if errors.Is(err, agent.ErrConfigMismatch) {
		return resp, invalid("%v", err)
	}
	if err != nil {
		return resp, fmt.Errorf("serve: open run %s: %w", runName, err)
	}
	res, err := a.Solve(ctx, agent.Query{Text: req.Question, Gold: req.Gold, Task: req.Task})
	if ctx.Err() != nil {
		// A cancelled request records nothing: no half episode in the store.
		return resp, ctx.Err()
	}
	q := []store.Question{agent.AdhocQuestion(req.Question, req.Gold)}
	if uerr := o.Store.UpsertQuestions(ctx, q); uerr != nil {
		return resp, fmt.Errorf("serve: record question: %w", uerr)
	}
	// A run holds one episode per question: asking the same question again in
	// the same run is answered but not recorded twice (EpisodeID 0).
	ep, rerr := agent.Record(ctx, o.Store, run.ID, q[0].ID, res, err)
	if rerr != nil && !errors.Is(rerr, store.ErrEpisodeExists) {
		return resp, fmt.Errorf("serve: record episode: %w", rerr)
	}
	epID := ep.ID
	if err != nil {
		return resp, err
	}
	resp.RunID, resp.EpisodeID = run.ID, epID
	resp.Answer = res.Trajectory.Answer
	resp.Finished = res.Status == store.EpisodeDone
	resp.Trajectory = trajectory.Render(res.Trajectory)
	for i, s := range res.Trajectory.Steps {
		st := AgentStep{Thought: s.Thought, Action: s.Action, Argument: s.Argument, Observation: s.Observation}
		if i < len(res.Info) {
			st.Noise = res.Info[i].Noise
		}
		resp.Steps = append(resp.Steps, st)
	}
	if req.Gold != "" {
		em, f1 := res.Scores.EM, res.Scores.F1
		resp.EM, resp.F1 = &em, &f1
	}
	resp.Usage = Usage{PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.GeneratedTokens,
		TotalTokens: res.Usage.PromptTokens + res.Usage.GeneratedTokens}
	resp.Seconds = res.Latency.Seconds()
	return resp, nil
}
