package serve

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// ErrInvalidAgentRequest is wrapped by an AgentRunner's error when the request
// itself is wrong (unknown method or tool, bad noise setting): the server then
// answers 400 instead of 500.
var ErrInvalidAgentRequest = errors.New("invalid agent request")

// AgentRunner runs one question through the agent loop with the backend the
// request's model name selects, records the episode in the store, and
// returns the trajectory. It must honour ctx: a cancelled request should stop
// generating and not record a half episode.
type AgentRunner func(ctx context.Context, b Backend, req AgentRequest) (AgentResponse, error)

// AgentRequest is the body of POST /v1/agent/run.
type AgentRequest struct {
	// Model selects base model and adapter, as in /v1/completions.
	Model string `json:"model"`
	// Question is the question to answer (required).
	Question string `json:"question"`
	// Gold, when given, is the reference answer the episode is scored against.
	Gold string `json:"gold,omitempty"`
	// Task names the task whose prompts and metric apply (e.g. "hotpotqa").
	Task string `json:"task,omitempty"`
	// Method is the agent method: "react", "cot", "reflexion" or "io".
	Method string `json:"method,omitempty"`
	// Format is the prompt format (e.g. "fewshot", "alpaca", "chat").
	Format string `json:"format,omitempty"`
	// Tools are the tool backends to give the agent (e.g. "wikipedia", "local").
	Tools []string `json:"tools,omitempty"`
	// Noise is the probability that an observation is replaced by noise, and
	// NoiseSeed makes the choice reproducible. NoiseKind is FireAct's setting:
	// "none" (replaced by "None"), "random" (by another query's recorded
	// observation) or "mixed" (either; the default).
	Noise     float64 `json:"noise,omitempty"`
	NoiseKind string  `json:"noise_kind,omitempty"`
	NoiseSeed int64   `json:"noise_seed,omitempty"`
	// OracleRetry lets Reflexion retry an answer that the gold answer says is
	// wrong: an oracle, off by default (it makes a score meaningless).
	OracleRetry bool `json:"oracle_retry,omitempty"`
	// MaxSteps bounds the thought/action/observation turns.
	MaxSteps int `json:"max_steps,omitempty"`
	// Temperature and Seed set the sampling of every step (absent: the server's default).
	Temperature *float32 `json:"temperature,omitempty"`
	Seed        *int64   `json:"seed,omitempty"`
	// Run is the name of the store run to record the episode in ("" lets the
	// runner choose).
	Run string `json:"run,omitempty"`
}

// AgentStep is one turn of a returned trajectory.
type AgentStep struct {
	Thought     string `json:"thought,omitempty"`
	Action      string `json:"action,omitempty"`
	Argument    string `json:"argument,omitempty"`
	Observation string `json:"observation,omitempty"`
	// Noise says what noise replaced the observation ("" for none).
	Noise string `json:"noise,omitempty"`
}

// AgentResponse is the body of a /v1/agent/run response.
type AgentResponse struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Model  string `json:"model"`
	// RunID and EpisodeID identify the recorded episode in the store.
	RunID     int64 `json:"run_id"`
	EpisodeID int64 `json:"episode_id"`
	// Answer is the agent's final answer; Finished is false when it ran out of steps.
	Answer   string      `json:"answer"`
	Finished bool        `json:"finished"`
	Steps    []AgentStep `json:"steps"`
	// Trajectory is the whole trajectory rendered as text.
	Trajectory string `json:"trajectory,omitempty"`
	// EM and F1 are set when a gold answer was given.
	EM      *float64 `json:"em,omitempty"`
	F1      *float64 `json:"f1,omitempty"`
	Usage   Usage    `json:"usage"`
	Seconds float64  `json:"seconds"`
}

func (s *Server) handleAgentRun(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AgentRunner == nil {
		writeError(w, apiErrorf(http.StatusNotImplemented, ErrTypeInvalidRequest, "not_implemented",
			"this server has no agent runner"))
		return
	}
	var req AgentRequest
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Question == "" {
		writeError(w, badRequest("question is required"))
		return
	}
	if req.Noise < 0 || req.Noise > 1 {
		writeError(w, badRequest("noise must be between 0 and 1, got %g", req.Noise))
		return
	}
	b, e := s.backend(req.Model)
	if e != nil {
		writeError(w, e)
		return
	}
	start := time.Now()
	ctx := r.Context()
	resp, err := s.cfg.AgentRunner(ctx, b, req)
	if err != nil {
		switch {
		case errors.Is(err, ErrInvalidAgentRequest):
			writeError(w, badRequest("%v", err))
		default:
			if e := s.generationError(ctx, err); e != nil {
				e.Code = "agent_failed"
				if e.Status == http.StatusInternalServerError {
					e.Message = "agent run failed: " + err.Error()
				}
				writeError(w, e)
			}
		}
		return
	}
	if resp.ID == "" {
		resp.ID = newID("agent-")
	}
	resp.Object = "agent.run"
	resp.Model = b.Model
	if resp.Seconds == 0 {
		resp.Seconds = time.Since(start).Seconds()
	}
	s.met.addTokens(resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	writeJSON(w, http.StatusOK, resp)
}
