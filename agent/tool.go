package agent

import (
	"context"
	"errors"
)

// Tool runs one action of the agent (search, or lookup with ReAct's
// Wikipedia semantics) and returns what the agent observes. Implementations
// must be safe for concurrent use; per-episode state comes from the context
// (ToolHistoryFrom), never from the tool.
type Tool interface {
	Call(ctx context.Context, action, arg string) (Observation, error)
}

// Observation is a tool's answer.
type Observation struct {
	Text string
	// Cached is true when the answer came from the store's tool cache.
	Cached bool
	// Noise describes the noise a Noise wrapper applied ("" when none), as it
	// is recorded on the step: "none" (the observation was replaced by "None")
	// or "random:<query>" (replaced by the recorded observation of another
	// query).
	Noise string
}

// ErrUnknownAction is returned by tools asked for an action they do not
// implement.
var ErrUnknownAction = errors.New("agent: unknown action")

// callSiteKey is the context key of CallSite.
type callSiteKey struct{}

// CallSite identifies a tool call within a run, so that seeded decorators
// (Noise) draw the same randomness for the same call however goroutines are
// scheduled.
type CallSite struct {
	// Episode identifies the question (its task, split and index, or its text).
	Episode string
	// Step is the 0-based step of the episode.
	Step int
}

// WithCallSite returns ctx carrying the call site of the tool call made with it.
func WithCallSite(ctx context.Context, cs CallSite) context.Context {
	return context.WithValue(ctx, callSiteKey{}, cs)
}

// CallSiteFrom returns the call site carried by ctx, if any.
func CallSiteFrom(ctx context.Context) (CallSite, bool) {
	cs, ok := ctx.Value(callSiteKey{}).(CallSite)
	return cs, ok
}

// toolHistoryKey is the context key of WithToolHistory.
type toolHistoryKey struct{}

// ToolCall is an earlier tool call of an episode.
type ToolCall struct {
	Action string // turn.ActionSearch or turn.ActionLookup
	Arg    string
}

// WithToolHistory returns ctx carrying the episode's tool calls before the
// one made with it, in order. A stateful action (lookup reads the page of the
// last search) is answered from it, so the tool keeps no per-episode state and
// a search answered by the cache still counts.
func WithToolHistory(ctx context.Context, calls []ToolCall) context.Context {
	return context.WithValue(ctx, toolHistoryKey{}, calls)
}

// ToolHistoryFrom returns the tool calls carried by ctx (none outside an
// episode).
func ToolHistoryFrom(ctx context.Context) []ToolCall {
	h, _ := ctx.Value(toolHistoryKey{}).([]ToolCall)
	return h
}
