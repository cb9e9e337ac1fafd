package llama

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EngineOptions configure a generation engine.
type EngineOptions struct {
	// Context configures the engine's single context. NSeqMax is the number of
	// sequences decoded together (default 8). NCtx is the total number of KV
	// cells (default 4096).
	//
	// KVUnified chooses how sequences share the cache. Off (the default), each
	// sequence has a stream of NCtx/NSeqMax cells and attends only to its own; a
	// shared prompt prefix is copied from the stream that holds it (a memory copy,
	// not a decode). On, all sequences live in one buffer and a shared prefix is
	// stored once, but every token's attention then spans the cells of every
	// sequence. BenchmarkKVLayout (8 requests, stories260K, 2 cores): separate
	// streams 1.18x the unified buffer's tokens/s with a 1,200-token shared
	// prefix (an earlier engine measured 0.90x with a 320-token one); long
	// few-shot prompts are the agent's case, hence the default. Separate streams make llama.cpp split a decode
	// wherever the sequence ids in it are not consecutive; planStep keeps such
	// decodes in one pass over the weights.
	Context ContextOptions
	// PerRequest is the number of KV cells one request may hold (prompt and
	// output). When set, Context.NCtx must be 0 and becomes PerRequest x NSeqMax
	// (or PerRequest with KVUnified, where every sequence may use the whole
	// buffer): callers size for the longest request they expect, not for a
	// total that they would have to divide themselves.
	PerRequest int
	// NoPrefixReuse turns off shared-prefix reuse: every prompt is decoded in full.
	// Only useful as a baseline for benchmarks and tests.
	NoPrefixReuse bool
	// MinSharedPrefix is the shortest common prefix (in tokens) worth waiting for:
	// a request whose prompt shares at least this many tokens with a prompt that is
	// still being decoded waits for it and then reuses its cells (default 16).
	MinSharedPrefix int
}

// AdapterScale is an adapter and the scale to apply it with.
type AdapterScale struct {
	Adapter *Adapter
	Scale   float32
}

// Request is one generation.
type Request struct {
	// Prompt is tokenized with the model's special tokens (BOS) added, unless Tokens
	// is set, which is then used as is.
	Prompt string
	Tokens []Token
	// ParseSpecial makes special-token text in Prompt (e.g. "<|im_end|>") tokenize
	// as special tokens. Off by default: prompts may hold untrusted text.
	ParseSpecial bool
	// MaxTokens bounds the generated tokens (0: until end of generation or the
	// context is full).
	MaxTokens int
	Sampling  SamplingOptions
	// Stop strings end generation; the text returned stops before the first match.
	Stop []string
	// IgnoreEOS keeps generating past end-of-generation tokens.
	IgnoreEOS bool
	// LogProbs records, for every generated token, its log-probability under
	// the model's own distribution at that step: the log-softmax of the
	// logits (with the request's adapters), before temperature, top-p or a
	// grammar reshaped them. That is the policy a reward trainer scores
	// (GRPO's ratio against the rollout's log-probabilities), and what the
	// OpenAI API's logprobs report.
	LogProbs bool
	// Adapters applied to this request. Requests with different adapter sets are
	// served concurrently, each set in its own decode call per step.
	Adapters []AdapterScale
	// OnText, when set, receives the generated text as it becomes final (never text
	// that could still turn out to be part of a stop string, never half a UTF-8
	// character). It runs on the caller's goroutine; an error from it cancels the
	// request and is returned by Generate.
	OnText func(text string) error
}

// FinishReason says why a generation ended. Its values are the OpenAI API's
// finish_reason strings, so the wire format is string(reason).
type FinishReason string

// Finish reasons.
const (
	FinishStop   FinishReason = "stop"   // end-of-generation token or a stop string
	FinishLength FinishReason = "length" // MaxTokens reached or the context is full
)

// Result is a finished generation.
type Result struct {
	Text   string
	Tokens []Token // generated tokens
	// LogProbs holds log p(Tokens[i]) when the request asked for them
	// (Request.LogProbs), one per token.
	LogProbs     []float32
	FinishReason FinishReason
	StopString   string // the stop string that matched, if any
	PromptTokens int    // tokens in the prompt
	CachedTokens int    // prompt tokens reused from the KV cache, not decoded again
	// OutOfContext is set when generation stopped (FinishLength) because the
	// request's KV cells were used up, not because MaxTokens was reached: the
	// text is cut short, which a caller continuing a conversation must know.
	OutOfContext bool
	// PromptTime is from admission to the first generated token; GenTime the rest.
	PromptTime time.Duration
	GenTime    time.Duration
}

// EngineStats are cumulative counters of an engine.
type EngineStats struct {
	Requests        int64 // finished requests
	PromptTokens    int64 // prompt tokens submitted
	PromptDecoded   int64 // prompt tokens actually decoded
	PromptReused    int64 // prompt tokens served from shared or cached KV cells
	GeneratedTokens int64
	Decodes         int64 // llama_decode calls
	// Bridged counts throwaway tokens that kept a decode over non-consecutive
	// sequences in one pass over the weights (see planStep).
	Bridged int64
}

// ErrContextFull is returned for a request that could not be given KV cells even
// after every idle cache was evicted.
var ErrContextFull = errors.New("llama: engine: KV cache full; lower the concurrency or raise NCtx")

// ErrPromptTooLong is returned for a prompt that does not fit one request's KV
// cells (Engine.SeqContext).
var ErrPromptTooLong = errors.New("llama: prompt does not fit a request's context")

// Engine is a batched generation engine: many concurrent requests share one
// context, and each decode step advances every active sequence (continuous
// batching). Prompt prefixes already in the KV cache (from a request in flight or a
// finished one) are shared instead of decoded again. Safe for concurrent use.
type Engine struct {
	m    *Model
	ctx  *Context
	opts EngineOptions

	submit chan *job
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once

	stats struct {
		requests, promptTokens, promptDecoded, promptReused, generated, decodes, bridged atomic.Int64
	}
}

// NewEngine creates an engine with its own context on m.
func NewEngine(m *Model, opts EngineOptions) (*Engine, error) {
	co := opts.Context
	if co.NSeqMax == 0 {
		co.NSeqMax = 8
	}
	if opts.PerRequest > 0 {
		if co.NCtx != 0 {
			return nil, fmt.Errorf("llama: new engine: set NCtx (%d) or PerRequest (%d), not both", co.NCtx, opts.PerRequest)
		}
		co.NCtx = opts.PerRequest
		if !co.KVUnified {
			co.NCtx *= co.NSeqMax
		}
	}
	if co.NCtx == 0 {
		co.NCtx = 4096
	}
	if opts.MinSharedPrefix <= 0 {
		opts.MinSharedPrefix = 16
	}
	ctx, err := m.NewContext(co)
	if err != nil {
		return nil, fmt.Errorf("llama: new engine: %w", err)
	}
	opts.Context = co
	e := &Engine{
		m:      m,
		ctx:    ctx,
		opts:   opts,
		submit: make(chan *job),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go e.run()
	return e, nil
}

// Model returns the engine's model.
func (e *Engine) Model() *Model { return e.m }

// ContextOptions returns the options the engine's context was created with.
func (e *Engine) ContextOptions() ContextOptions { return e.opts.Context }

// SeqContext is the number of tokens one request can hold (prompt and output).
func (e *Engine) SeqContext() int { return e.ctx.NCtxSeq() }

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	return EngineStats{
		Requests:        e.stats.requests.Load(),
		PromptTokens:    e.stats.promptTokens.Load(),
		PromptDecoded:   e.stats.promptDecoded.Load(),
		PromptReused:    e.stats.promptReused.Load(),
		GeneratedTokens: e.stats.generated.Load(),
		Decodes:         e.stats.decodes.Load(),
		Bridged:         e.stats.bridged.Load(),
	}
}

// Close stops the engine: requests in flight fail with ErrClosed. The model stays open.
func (e *Engine) Close() error {
	e.once.Do(func() {
		close(e.quit)
		<-e.done
		e.ctx.Close()
	})
	return nil
}

// job is a request inside the engine.
type job struct {
	ctx        context.Context
	req        *Request
	prompt     []Token
	adapterKey string
	smp        *sampler
	// argmax: plain greedy decoding needs no sampler chain; reading the argmax
	// directly skips llama.cpp's per-token copy of the whole vocabulary.
	argmax   bool
	admitted time.Time

	mu      sync.Mutex
	text    []string // text ready for OnText, not yet delivered
	notify  chan struct{}
	result  *Result
	err     error
	done    chan struct{}
	doneSet bool
}

func (j *job) push(s string) {
	if s == "" || j.req.OnText == nil {
		return
	}
	j.mu.Lock()
	j.text = append(j.text, s)
	j.mu.Unlock()
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

func (j *job) finish(r *Result, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.doneSet {
		return
	}
	j.doneSet = true
	j.result, j.err = r, err
	j.smp.free()
	close(j.done)
}

// Generate runs one request to completion. It is safe to call from many goroutines
// at once; that is what lets the engine batch.
func (e *Engine) Generate(ctx context.Context, req Request) (*Result, error) {
	prompt := req.Tokens
	if prompt == nil {
		var err error
		prompt, err = e.m.Tokenize(req.Prompt, TokenizeOptions{AddSpecial: true, ParseSpecial: req.ParseSpecial})
		if err != nil {
			return nil, fmt.Errorf("llama: generate: %w", err)
		}
	}
	if len(prompt) == 0 {
		return nil, fmt.Errorf("llama: generate: empty prompt")
	}
	if len(prompt) >= e.ctx.NCtxSeq() {
		return nil, fmt.Errorf("llama: generate: %w: %d tokens, %d cells per request", ErrPromptTooLong, len(prompt), e.ctx.NCtxSeq())
	}
	for _, a := range req.Adapters {
		if a.Adapter == nil {
			return nil, fmt.Errorf("llama: generate: nil adapter")
		}
		if _, err := a.Adapter.handle(e.m); err != nil {
			return nil, fmt.Errorf("llama: generate: %w", err)
		}
	}
	smp, err := e.m.newSampler(req.Sampling)
	if err != nil {
		return nil, fmt.Errorf("llama: generate: %w", err)
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j := &job{
		ctx:        jctx,
		req:        &req,
		prompt:     prompt,
		adapterKey: adapterKey(req.Adapters),
		smp:        smp,
		argmax:     isPlainGreedy(req.Sampling),
		notify:     make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	select {
	case e.submit <- j:
	case <-e.quit:
		smp.free()
		return nil, ErrClosed
	case <-ctx.Done():
		smp.free()
		return nil, ctx.Err()
	}
	var cbErr error
	deliver := func() {
		j.mu.Lock()
		pending := j.text
		j.text = nil
		j.mu.Unlock()
		for _, s := range pending {
			if cbErr == nil {
				if err := req.OnText(s); err != nil {
					cbErr = err
					cancel()
				}
			}
		}
	}
	for {
		select {
		case <-j.notify:
			deliver()
			continue
		case <-j.done:
		}
		break
	}
	deliver()
	if cbErr != nil {
		return j.result, cbErr
	}
	return j.result, j.err
}

func isPlainGreedy(o SamplingOptions) bool {
	return o.Temperature <= 0 && o.Grammar == "" && (o.RepeatPenalty == 0 || o.RepeatPenalty == 1) &&
		o.FrequencyPenalty == 0 && o.PresencePenalty == 0
}

func adapterKey(as []AdapterScale) string {
	if len(as) == 0 {
		return ""
	}
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, fmt.Sprintf("%p@%s", a.Adapter, strconv.FormatFloat(float64(a.Scale), 'g', -1, 32)))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
