package llama

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
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
	// Adapters applied to this request. Requests with different adapter sets are
	// served concurrently, each set in its own decode call per step.
	Adapters []AdapterScale
	// OnText, when set, receives the generated text as it becomes final (never text
	// that could still turn out to be part of a stop string, never half a UTF-8
	// character). It runs on the caller's goroutine; an error from it cancels the
	// request and is returned by Generate.
	OnText func(text string) error
}

// Finish reasons.
const (
	FinishStop   = "stop"   // end-of-generation token or a stop string
	FinishLength = "length" // MaxTokens reached or the context is full
)

// Result is a finished generation.
type Result struct {
	Text         string
	Tokens       []Token // generated tokens
	FinishReason string  // FinishStop or FinishLength
	StopString   string  // the stop string that matched, if any
	PromptTokens int     // tokens in the prompt
	CachedTokens int     // prompt tokens reused from the KV cache, not decoded again
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

// slot is one sequence of the context.
type slot struct {
	id  int
	job *job // nil when idle
	// kv lists the tokens whose KV cells this sequence holds, positions 0..len-1.
	// An idle slot keeps its cells so a later prompt with the same prefix (the next
	// agent turn, a shared few-shot prompt) can reuse them.
	kv         []Token
	adapterKey string
	pending    []Token // prompt tokens still to decode
	next       Token   // sampled token to decode in the next step (generation phase)
	hasNext    bool
	lastUse    int64
	out        []byte // generated bytes
	emitted    int    // bytes of out already handed to OnText
	firstTok   time.Time
	cached     int
	generated  []Token
	maxStopLen int
}

func (s *slot) active() bool { return s.job != nil }

// run is the scheduler: the only goroutine that touches the context.
func (e *Engine) run() {
	defer close(e.done)
	slots := make([]*slot, e.ctx.NSeqMax())
	for i := range slots {
		slots[i] = &slot{id: i}
	}
	var queue []*job
	var tick int64
	curAdapters := ""
	batch := &Batch{}

	failAll := func(err error) {
		for _, s := range slots {
			if s.job != nil {
				s.job.finish(nil, err)
				s.job = nil
			}
		}
		for _, j := range queue {
			j.finish(nil, err)
		}
		queue = nil
	}

	for {
		tick++
		nActive := 0
		for _, s := range slots {
			if s.active() {
				nActive++
			}
		}
		// Wait for work when idle; otherwise pick up new requests without blocking.
		if nActive == 0 && len(queue) == 0 {
			select {
			case j := <-e.submit:
				queue = append(queue, j)
			case <-e.quit:
				failAll(ErrClosed)
				return
			}
		}
	drain:
		for {
			select {
			case j := <-e.submit:
				queue = append(queue, j)
			case <-e.quit:
				failAll(ErrClosed)
				return
			default:
				break drain
			}
		}

		// Cancelled requests leave first, queued or active.
		kept := queue[:0]
		for _, j := range queue {
			if err := j.ctx.Err(); err != nil {
				j.finish(nil, err)
				continue
			}
			kept = append(kept, j)
		}
		queue = kept
		for _, s := range slots {
			if s.active() {
				if err := s.job.ctx.Err(); err != nil {
					e.release(s, nil, err)
				}
			}
		}

		queue = e.admit(slots, queue, tick)

		// One decode per adapter set per step.
		groups := map[string][]*slot{}
		var order []string
		for _, s := range slots {
			if !s.active() || (!s.hasNext && len(s.pending) == 0) {
				continue
			}
			if _, ok := groups[s.adapterKey]; !ok {
				order = append(order, s.adapterKey)
			}
			groups[s.adapterKey] = append(groups[s.adapterKey], s)
		}
		sort.Strings(order)
		for _, key := range order {
			group := groups[key]
			if key != curAdapters {
				if err := e.applyAdapters(group[0].job.req.Adapters); err != nil {
					for _, s := range group {
						e.release(s, nil, err)
					}
					curAdapters = "\x00invalid"
					continue
				}
				curAdapters = key
			}
			e.step(slots, group, batch, tick)
		}
	}
}

// admit moves queued jobs into idle slots, reusing cached prefixes.
func (e *Engine) admit(slots []*slot, queue []*job, tick int64) []*job {
	var waiting []*job
	for qi, j := range queue {
		var free []*slot
		for _, s := range slots {
			if !s.active() {
				free = append(free, s)
			}
		}
		if len(free) == 0 {
			return append(waiting, queue[qi:]...)
		}
		// Best source of reusable cells: the longest common prefix with what any
		// sequence of the same adapter set holds now, and with what it will hold once
		// its pending prompt is decoded.
		var src *slot
		best, bestFuture := 0, 0
		if !e.opts.NoPrefixReuse {
			for _, s := range slots {
				if s.adapterKey != j.adapterKey {
					continue
				}
				if n := commonPrefix(s.kv, j.prompt); n > best || (n == best && src != nil && !s.active() && src.active()) {
					best, src = n, s
				}
				if s.active() && len(s.pending) > 0 {
					n := commonPrefix(s.kv, j.prompt)
					if n == len(s.kv) {
						n += commonPrefix(s.pending, j.prompt[n:])
					}
					bestFuture = max(bestFuture, n)
				}
			}
		}
		if bestFuture >= best+e.opts.MinSharedPrefix {
			// A sequence in flight is decoding this prefix right now: wait one step
			// and share its cells instead of decoding the same tokens twice.
			waiting = append(waiting, j)
			continue
		}
		// Target: the source itself when it is idle, else the idle slot whose cache
		// is least useful (shortest, then least recently used, then the lowest id:
		// sequences packed at low ids decode in fewer passes, see planStep).
		var t *slot
		if src != nil && !src.active() {
			t = src
		} else {
			sort.Slice(free, func(a, b int) bool {
				if len(free[a].kv) != len(free[b].kv) {
					return len(free[a].kv) < len(free[b].kv)
				}
				if free[a].lastUse != free[b].lastUse {
					return free[a].lastUse < free[b].lastUse
				}
				return free[a].id < free[b].id
			})
			t = free[0]
		}
		reuse := best
		if reuse >= len(j.prompt) {
			reuse = len(j.prompt) - 1 // the last prompt token must be decoded for logits
		}
		if t == src {
			e.ctx.SeqRemove(t.id, reuse, -1)
			t.kv = t.kv[:reuse]
		} else {
			e.ctx.SeqRemove(t.id, -1, -1)
			t.kv = t.kv[:0]
			if reuse > 0 {
				if e.opts.Context.KVUnified {
					// Same buffer: the cells become shared, nothing is copied.
					e.ctx.SeqCopy(src.id, t.id, 0, reuse)
				} else {
					// Separate streams: llama.cpp copies a whole stream, so copy
					// it and cut the copy back to the shared prefix.
					e.ctx.SeqCopy(src.id, t.id, -1, -1)
					e.ctx.SeqRemove(t.id, reuse, -1)
				}
				t.kv = append(t.kv, j.prompt[:reuse]...)
			}
		}
		t.job = j
		t.adapterKey = j.adapterKey
		t.pending = j.prompt[reuse:]
		t.hasNext = false
		t.out = t.out[:0]
		t.emitted = 0
		t.cached = reuse
		t.generated = nil
		t.lastUse = tick
		t.maxStopLen = 0
		for _, st := range j.req.Stop {
			t.maxStopLen = max(t.maxStopLen, len(st))
		}
		j.admitted = time.Now()
		e.stats.promptTokens.Add(int64(len(j.prompt)))
		e.stats.promptReused.Add(int64(reuse))
	}
	return waiting
}

func commonPrefix(a, b []Token) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func (e *Engine) applyAdapters(as []AdapterScale) error {
	if err := e.ctx.ClearAdapters(); err != nil {
		return err
	}
	for _, a := range as {
		if err := e.ctx.SetAdapter(a.Adapter, a.Scale); err != nil {
			return err
		}
	}
	return nil
}

// feed is what one sequence puts into a decode: n tokens (its generation token,
// or n prompt tokens), or, with n == 0, one throwaway token that bridges a gap.
type feed struct {
	s *slot
	n int
}

// maxBridge is the widest run of sequences outside a decode that planStep bridges
// with throwaway tokens rather than letting llama.cpp split the decode there. A
// throwaway token costs about one token's share of a batched decode; a split
// costs another pass over all the weights, which is several tokens' worth even
// for a 110M model at 32 sequences (BenchmarkDecodeBatchScaling) and more for
// larger ones.
const maxBridge = 4

// planStep decides what each slot of group feeds into the next decode, in
// sequence-id order. With one KV stream per sequence, llama.cpp splits a decode
// into micro-batches that each cover consecutive sequence ids with the same number
// of tokens per sequence, and every micro-batch is another pass over the weights.
// So every sequence feeds one token (its generation token or its next prompt
// token), only the longest-waiting prompt feeds a whole chunk, and short gaps in
// the ids are bridged. With the unified cache a decode is never split, and every
// prompt feeds as much as the batch holds.
func (e *Engine) planStep(slots []*slot, group []*slot) []feed {
	nb := e.ctx.NBatch()
	neverSplit := e.opts.Context.KVUnified || e.ctx.NSeqMax() == 1
	var chunk *slot
	for _, s := range group {
		if !s.hasNext && len(s.pending) > 0 && (chunk == nil || s.job.admitted.Before(chunk.job.admitted)) {
			chunk = s
		}
	}
	var plan []feed
	used := 0
	for _, s := range group {
		if (s.hasNext || len(s.pending) > 0) && used < nb {
			plan = append(plan, feed{s, 1})
			used++
		}
	}
	// Generation tokens come first: a long prompt must not stall sequences
	// already producing text, so prompts share only the room that is left.
	for i := range plan {
		s := plan[i].s
		if s.hasNext || (!neverSplit && s != chunk) {
			continue
		}
		n := min(len(s.pending), nb-used+1)
		used += n - 1
		plan[i].n = n
	}
	if neverSplit || len(plan) < 2 {
		return plan
	}
	out := make([]feed, 0, len(plan)+maxBridge)
	for i, f := range plan {
		if i > 0 {
			gap := slots[plan[i-1].s.id+1 : f.s.id]
			if len(gap) > 0 && len(gap) <= maxBridge && used+len(gap) <= nb && e.haveRoom(gap) {
				for _, g := range gap {
					out = append(out, feed{g, 0})
				}
				used += len(gap)
			}
		}
		out = append(out, f)
	}
	return out
}

// haveRoom reports whether every slot can take one more KV cell.
func (e *Engine) haveRoom(ss []*slot) bool {
	for _, s := range ss {
		if len(s.kv)+1 >= e.ctx.NCtxSeq() {
			return false
		}
	}
	return true
}

// step decodes one batch for a group of slots sharing an adapter set, then samples.
func (e *Engine) step(slots []*slot, group []*slot, batch *Batch, tick int64) {
	type row struct {
		s   *slot
		idx int // batch row with the logits to sample from
	}
	for attempt := 0; ; attempt++ {
		batch.Reset()
		var rows []row
		var fed []feed
		plan := e.planStep(slots, group)
		if len(plan) == 0 {
			return
		}
		var bridges []feed
		for _, f := range plan {
			s := f.s
			switch {
			case f.n == 0: // a bridge: one throwaway token, removed after the decode
				batch.Add(0, len(s.kv), s.id, false)
				bridges = append(bridges, f)
			case s.hasNext:
				batch.Add(s.next, len(s.kv), s.id, true)
				rows = append(rows, row{s, batch.Len() - 1})
				fed = append(fed, f)
			default:
				for i := 0; i < f.n; i++ {
					last := i == f.n-1 && f.n == len(s.pending)
					batch.Add(s.pending[i], len(s.kv)+i, s.id, last)
					if last {
						rows = append(rows, row{s, batch.Len() - 1})
					}
				}
				fed = append(fed, f)
			}
		}
		err := e.ctx.Decode(batch)
		for _, f := range bridges {
			e.ctx.SeqRemove(f.s.id, len(f.s.kv), -1)
		}
		e.stats.decodes.Add(1)
		if err == nil {
			e.stats.bridged.Add(int64(len(bridges)))
		}
		if errors.Is(err, ErrNoKVSlot) {
			// Free the cells of idle sequences first; if that is not enough, give up
			// on the most recently admitted request of this group.
			if e.evictIdle(slots) && attempt == 0 {
				continue
			}
			victim := group[0]
			for _, s := range group {
				if s.job.admitted.After(victim.job.admitted) {
					victim = s
				}
			}
			e.release(victim, nil, ErrContextFull)
			e.ctx.SeqRemove(victim.id, -1, -1)
			victim.kv = victim.kv[:0]
			var rest []*slot
			for _, s := range group {
				if s != victim {
					rest = append(rest, s)
				}
			}
			if len(rest) == 0 {
				return
			}
			group = rest
			continue
		}
		if err != nil {
			for _, s := range group {
				e.release(s, nil, err)
			}
			return
		}
		for _, f := range fed {
			s := f.s
			if s.hasNext && f.n == 1 && len(s.pending) == 0 {
				s.kv = append(s.kv, s.next)
				s.hasNext = false
			} else {
				s.kv = append(s.kv, s.pending[:f.n]...)
				s.pending = s.pending[f.n:]
				e.stats.promptDecoded.Add(int64(f.n))
			}
			s.lastUse = tick
		}
		toks := make([]Token, len(rows))
		errs := make([]error, len(rows))
		chains := 0
		for _, r := range rows {
			if !r.s.job.argmax {
				chains++
			}
		}
		e.sampleRows(len(rows), chains > 1, func(i int) { toks[i], errs[i] = e.sampleRow(rows[i].s, rows[i].idx) })
		for i, r := range rows {
			e.afterLogits(r.s, toks[i], errs[i])
		}
		return
	}
}

// evictIdle drops the cached cells of idle sequences; it reports whether any were freed.
func (e *Engine) evictIdle(slots []*slot) bool {
	freed := false
	for _, s := range slots {
		if !s.active() && len(s.kv) > 0 {
			e.ctx.SeqRemove(s.id, -1, -1)
			s.kv = s.kv[:0]
			freed = true
		}
	}
	return freed
}

// sampleRow draws the next token of s from batch row idx. It touches only s's own
// sampler and reads the shared logits, so rows may be sampled concurrently.
func (e *Engine) sampleRow(s *slot, idx int) (Token, error) {
	if s.job.argmax {
		return e.ctx.Argmax(idx)
	}
	return s.job.smp.sample(e.ctx, idx)
}

// sampleRows runs f(0..n-1), spread over the CPUs when parallel is set: a grammar
// or a large vocabulary makes a sampler chain cost milliseconds per row, and run
// one row after another it would undo much of what batching the decode saved.
// (A plain argmax costs microseconds and is not worth a goroutine.)
func (e *Engine) sampleRows(n int, parallel bool, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if !parallel || workers <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	// llama.cpp may still reorder the output rows on the first read of the
	// logits; do that once here, not racing from several threads.
	e.ctx.settleLogits()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// afterLogits takes the token drawn for s (or why none was) and checks for the end.
func (e *Engine) afterLogits(s *slot, tok Token, err error) {
	j := s.job
	if err != nil {
		e.release(s, nil, err)
		return
	}
	if len(s.generated) == 0 {
		s.firstTok = time.Now()
	}
	e.stats.generated.Add(1)
	if !j.req.IgnoreEOS && e.m.IsEOG(tok) {
		e.release(s, &Result{FinishReason: FinishStop}, nil)
		return
	}
	s.generated = append(s.generated, tok)
	s.out = append(s.out, e.m.TokenPiece(tok, false)...)
	if stop, at := findStop(s.out, j.req.Stop, s.emitted); stop != "" {
		s.out = s.out[:at]
		e.release(s, &Result{FinishReason: FinishStop, StopString: stop}, nil)
		return
	}
	if j.req.MaxTokens > 0 && len(s.generated) >= j.req.MaxTokens {
		e.release(s, &Result{FinishReason: FinishLength}, nil)
		return
	}
	if len(s.kv)+1 >= e.ctx.NCtxSeq() {
		e.release(s, &Result{FinishReason: FinishLength, OutOfContext: true}, nil)
		return
	}
	// Hand over text that can no longer be part of a stop string.
	safe := len(s.out) - holdBack(s.out, j.req.Stop)
	safe = utf8Boundary(s.out, safe)
	if safe > s.emitted {
		j.push(string(s.out[s.emitted:safe]))
		s.emitted = safe
	}
	s.next, s.hasNext = tok, true
}

// release finishes the job of s (with a result or an error) and makes s idle.
func (e *Engine) release(s *slot, r *Result, err error) {
	j := s.job
	if j == nil {
		return
	}
	s.job = nil
	s.pending = nil
	s.hasNext = false
	if err != nil {
		j.finish(nil, err)
		return
	}
	text := s.out
	if rest := text[min(s.emitted, len(text)):]; len(rest) > 0 {
		j.push(string(rest))
	}
	r.Text = string(bytes.ToValidUTF8(text, []byte("\uFFFD")))
	r.Tokens = s.generated
	r.PromptTokens = len(j.prompt)
	r.CachedTokens = s.cached
	now := time.Now()
	if s.firstTok.IsZero() || s.firstTok.Before(j.admitted) {
		r.PromptTime = now.Sub(j.admitted)
	} else {
		r.PromptTime = s.firstTok.Sub(j.admitted)
		r.GenTime = now.Sub(s.firstTok)
	}
	s.firstTok = time.Time{}
	e.stats.requests.Add(1)
	j.finish(r, nil)
}

// findStop returns the earliest stop string in out that ends after byte from-1
// (earlier text was already checked) and its start offset.
func findStop(out []byte, stops []string, from int) (string, int) {
	best, at := "", -1
	for _, st := range stops {
		if st == "" {
			continue
		}
		start := max(0, from-len(st)+1)
		if i := bytes.Index(out[start:], []byte(st)); i >= 0 && (at < 0 || start+i < at) {
			best, at = st, start+i
		}
	}
	return best, at
}

// holdBack is the length of the longest suffix of out that is a proper prefix of a
// stop string: those bytes may still become a stop match.
func holdBack(out []byte, stops []string) int {
	h := 0
	for _, st := range stops {
		for n := min(len(st)-1, len(out)); n > h; n-- {
			if bytes.HasSuffix(out, []byte(st[:n])) {
				h = n
				break
			}
		}
	}
	return h
}

// utf8Boundary moves n back so that out[:n] does not end inside a UTF-8 sequence.
func utf8Boundary(out []byte, n int) int {
	if n <= 0 {
		return 0
	}
	for back := 0; back < utf8.UTFMax && n-back > 0; back++ {
		i := n - back - 1
		if utf8.RuneStart(out[i]) {
			if r, size := utf8.DecodeRune(out[i:n]); r == utf8.RuneError && size <= 1 && !utf8.FullRune(out[i:n]) {
				return i
			}
			return n
		}
	}
	return n
}
