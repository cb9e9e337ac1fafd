package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// LLM backend names.
const (
	BackendLocal  = "local"
	BackendOpenAI = "openai"
)

// Default questions in flight per backend: a local engine batches them into
// one decode, an API is bounded by its rate limits.
const (
	DefaultLocalConcurrency  = 8
	DefaultOpenAIConcurrency = 4
)

// LoRA is an adapter file and the scale to apply it with.
type LoRA struct {
	Path  string  `json:"path"`
	Scale float32 `json:"scale"`
}

// LLMOptions select and configure the LLM of a run.
type LLMOptions struct {
	// Backend is BackendLocal (a GGUF file through llama.cpp) or BackendOpenAI.
	Backend string
	// Model is the GGUF file (local) or the model name (openai).
	Model string
	// LoRAs are the adapters of a local model (a fine-tuned student).
	LoRAs []LoRA
	// BaseURL, Completions and Price configure the openai backend.
	BaseURL     string
	Completions bool
	Price       string
	// Concurrency is the number of questions in flight (0: 8 local, 4 openai).
	Concurrency int
	// Threads and GPULayers configure the local engine.
	Threads   int
	GPULayers int
	// KV is the total number of KV cells of the local engine (0: sized from
	// the agents' prompts and budgets, see ContextNeed).
	KV int
}

// LLMSetup is a built LLM with what identifies it in a run's record.
type LLMSetup struct {
	LLM   LLM
	Local bool
	// Concurrency is the number of questions to keep in flight.
	Concurrency int
	// ModelID is the sha256 of the model file (local) or the model name.
	ModelID string
	// AdapterIDs are "sha256@scale" of every adapter, in order.
	AdapterIDs []string
	// PerRequestKV is the KV cells each question may hold (local), and Warning
	// says, when not "", why an episode may still run out of them.
	PerRequestKV int
	Warning      string

	opts    LLMOptions
	closers []func()
}

// Close frees the engine, adapters and model.
func (l *LLMSetup) Close() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
	l.closers = nil
}

// NewLLM builds the LLM that agents will share and points each agent at it.
// A local engine's KV cache is sized so that every question in flight can
// hold the longest episode of any of the agents (ContextNeed); an explicit
// o.KV that cannot is refused here rather than by an episode that dies
// half-way.
func NewLLM(o LLMOptions, agents ...*Agent) (*LLMSetup, error) {
	if o.Model == "" {
		return nil, fmt.Errorf("agent: a model is required (a GGUF file, or a model name with the openai backend)")
	}
	ls := &LLMSetup{opts: o, Concurrency: o.Concurrency}
	switch o.Backend {
	case BackendOpenAI:
		if len(o.LoRAs) > 0 {
			return nil, fmt.Errorf("agent: LoRA adapters need the local backend")
		}
		if ls.Concurrency <= 0 {
			ls.Concurrency = DefaultOpenAIConcurrency
		}
		opts := OpenAIOptions{Model: o.Model, BaseURL: o.BaseURL, Completions: o.Completions, Concurrency: ls.Concurrency}
		if o.Price != "" {
			pr, err := ParsePrice(o.Price)
			if err != nil {
				return nil, err
			}
			opts.Price = pr
		}
		c, err := NewOpenAI(opts)
		if err != nil {
			return nil, err
		}
		ls.LLM, ls.ModelID = c, o.Model
	case BackendLocal, "":
		if err := ls.openLocal(agents); err != nil {
			ls.Close()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("agent: unknown LLM backend %q (want local or openai)", o.Backend)
	}
	for _, a := range agents {
		if a.Grammar && !ls.Local {
			ls.Close()
			return nil, fmt.Errorf("agent: grammar-constrained turns need the local backend")
		}
		a.LLM = ls.LLM
	}
	return ls, nil
}

func (ls *LLMSetup) openLocal(agents []*Agent) error {
	o := ls.opts
	ls.Local = true
	if ls.Concurrency <= 0 {
		ls.Concurrency = DefaultLocalConcurrency
	}
	m, err := llama.LoadModel(o.Model, llama.ModelOptions{GPULayers: o.GPULayers})
	if err != nil {
		return err
	}
	ls.closers = append(ls.closers, func() { m.Close() })
	if ls.ModelID, err = store.FileHash(o.Model); err != nil {
		return err
	}
	var adapters []llama.AdapterScale
	for _, l := range o.LoRAs {
		a, err := m.LoadAdapter(l.Path)
		if err != nil {
			return err
		}
		ls.closers = append(ls.closers, func() { a.Close() })
		adapters = append(adapters, llama.AdapterScale{Adapter: a, Scale: l.Scale})
		h, err := store.FileHash(l.Path)
		if err != nil {
			return err
		}
		ls.AdapterIDs = append(ls.AdapterIDs, h+"@"+strconv.FormatFloat(float64(l.Scale), 'g', -1, 32))
	}
	need := 0
	for _, a := range agents {
		n, err := a.ContextNeed(m)
		if err != nil {
			return err
		}
		need = max(need, n)
	}
	per, warn, err := planKV(o.KV, ls.Concurrency, need, m.Info().NCtxTrain)
	if err != nil {
		return err
	}
	ls.PerRequestKV, ls.Warning = per, warn
	e, err := llama.NewEngine(m, llama.EngineOptions{PerRequest: per,
		Context: llama.ContextOptions{NSeqMax: ls.Concurrency, Threads: o.Threads}})
	if err != nil {
		return err
	}
	ls.closers = append(ls.closers, func() { e.Close() })
	ls.LLM = &LocalLLM{Engine: e, Adapters: adapters}
	return nil
}

// DefaultRequestKV is a question's KV share when no agent says what it needs.
const DefaultRequestKV = 2048

// planKV decides the KV cells per question: what the longest episode needs,
// or the share of an explicit total, which must then hold that episode.
func planKV(total, conc, need, nCtxTrain int) (per int, warning string, err error) {
	if need <= 0 {
		need = DefaultRequestKV
	}
	if total > 0 {
		per = total / conc
		if per < need {
			return 0, "", fmt.Errorf("agent: --kv %d gives each of %d questions in flight %d cells, but an episode may need %d (prompt + max turns x (max tokens + observation)): raise --kv to %d, lower the concurrency, --max-turns or --max-tokens",
				total, conc, per, need, need*conc)
		}
	} else {
		per = need
	}
	if nCtxTrain > 0 && need > nCtxTrain {
		warning = fmt.Sprintf("an episode may need %d tokens, more than the %d the model was trained on: long episodes may degrade", need, nCtxTrain)
	}
	return per, warning, nil
}

// Room left in a question's context beyond the prompt and the model's turns:
// the question itself and each observation (FireAct's search results are one
// snippet; a long one is still recorded as out of context, not cut).
const (
	QuestionTokens    = 128
	ObservationTokens = 128
	// WikiObservationTokens is an observation of ReAct's Wikipedia search:
	// five sentences of a page, or five titles.
	WikiObservationTokens = 256
)

// ContextNeed is the most tokens one episode of a may hold: its prompt (with
// room for the question), plus max turns x (max tokens + an observation), each
// turn possibly re-asked once for its action.
func (a *Agent) ContextNeed(tok interface {
	Tokenize(string, llama.TokenizeOptions) ([]llama.Token, error)
}) (int, error) {
	prompt, _ := a.Prompt.build(a.Method, turnInput{})
	if a.Prompt.Format == FormatChat {
		prompt = a.Prompt.FewShot
	}
	t, err := tok.Tokenize(prompt, llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		return 0, fmt.Errorf("agent: size context: %w", err)
	}
	turns := a.Method.MaxTurns
	if turns <= 0 {
		turns = DefaultMaxTurns
	}
	maxTok := a.Sampling.MaxTokens
	if maxTok <= 0 {
		maxTok = defaultMaxTokens
	}
	if a.Grammar {
		maxTok = max(maxTok, grammarMaxTokens)
	}
	obs := ObservationTokens
	if a.Lookup {
		obs = WikiObservationTokens
	}
	if !a.Method.Tools {
		obs = 0
	}
	return len(t) + QuestionTokens + turns*(maxTok+obs), nil
}

// defaultMaxTokens bounds a turn when Sampling.MaxTokens is 0.
const defaultMaxTokens = 256

// AgentOptions are what shapes an agent's answers apart from its LLM.
type AgentOptions struct {
	// Method is "react", "cot", "reflexion" or "io"; MaxTurns overrides its
	// budget of model turns (0: the method's).
	Method   string
	MaxTurns int
	// Format is the prompt format; Task picks the built-in few-shot examples
	// unless PromptFile gives FireAct's prompt text.
	Format     string
	Task       string
	PromptFile string
	Grammar    bool
	Sampling   Sampling
	// OracleRetry lets Reflexion retry a finish that the gold answer says is
	// wrong. That is an oracle: fine for a teacher generating data, not for a
	// student's score, so it is off unless asked for.
	OracleRetry bool
	// SearchStyle is the search tool's style (SearchOptions.Style): with
	// SearchStyleReAct the agent may use lookup and, without PromptFile, a
	// tool-using method gets the Wikipedia few-shot prompt (WikiFewShotPrompt).
	SearchStyle string
}

// NewAgent builds an agent without its LLM (NewLLM sets it, sized for it).
func NewAgent(o AgentOptions, search Tool) (*Agent, error) {
	m, err := MethodByName(o.Method)
	if err != nil {
		return nil, err
	}
	if o.MaxTurns > 0 && m.MaxTurns > 1 {
		m.MaxTurns = o.MaxTurns
	}
	f, err := ParseFormat(o.Format)
	if err != nil {
		return nil, err
	}
	style, err := ParseSearchStyle(o.SearchStyle)
	if err != nil {
		return nil, err
	}
	lookup := style == SearchStyleReAct && m.Tools
	fewshot := FewShotPrompt(o.Task, m)
	if lookup {
		fewshot = WikiFewShotPrompt(o.Task, m)
	}
	if o.PromptFile != "" {
		if fewshot, err = LoadPromptFile(o.PromptFile); err != nil {
			return nil, err
		}
	}
	return &Agent{Search: search, Lookup: lookup, Method: m, Prompt: Prompt{Format: f, FewShot: fewshot},
		Sampling: o.Sampling, Grammar: o.Grammar, OracleRetry: o.OracleRetry}, nil
}

// TextHash is the hex sha256 of a text (a prompt's identity in a run record).
func TextHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
