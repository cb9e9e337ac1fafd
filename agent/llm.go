package agent

import (
	"context"
	"time"

	"github.com/fireact/fireact/store/trajectory"
)

// LLM generates text. Implementations must be safe for concurrent use: the
// runner calls Complete from one goroutine per question in flight, which is
// what lets a batched backend decode them together.
type LLM interface {
	Complete(ctx context.Context, req Request) (Response, error)
}

// Message is one chat message (role "system", "user" or "assistant").
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one generation. Exactly one of Prompt and Messages is set,
// depending on the prompt format.
type Request struct {
	Prompt   string
	Messages []Message
	// Stop strings end the generation; the returned text excludes them.
	Stop        []string
	MaxTokens   int
	Temperature float64
	TopP        float64
	Seed        int64
	// Grammar is a GBNF grammar the output must follow. Backends that cannot
	// constrain output (remote APIs) ignore it, and the parser's re-ask path
	// covers them.
	Grammar string
	// OnText, when set, receives generated text as it becomes final, for
	// streaming to a terminal. Backends without streaming call it once with
	// the whole text.
	OnText func(text string) error
	// State describes the episode the request belongs to. It is informational:
	// text backends ignore it, while a scripted policy (such as a demo world's
	// oracle teacher) can act on it instead of parsing the prompt.
	State *State
}

// State is where an episode stands when the agent asks the LLM for a turn.
type State struct {
	Question string
	Method   string
	// Steps are the steps taken so far, with their observations.
	Steps []trajectory.Step
	// Reflection is harness text injected before the model's next thought
	// (Reflexion, step-limit warning), "" when none.
	Reflection string
	// Reask is true when the agent re-asks for the action of a turn whose text
	// did not parse; the prompt then ends with "Action:".
	Reask bool
}

// Response is a finished generation.
type Response struct {
	Text            string
	PromptTokens    int
	CachedTokens    int // prompt tokens served from a cache, not recomputed
	GeneratedTokens int
	FinishReason    string
	// Cost is the price of the call in US dollars (0 when unknown or local).
	Cost    float64
	Latency time.Duration
}
