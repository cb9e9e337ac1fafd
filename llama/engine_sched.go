package llama

import (
	"errors"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// slot is one sequence of the context: its KV cells, which outlive requests, and
// the request running on them, if any.
type slot struct {
	id int
	// kv lists the tokens whose KV cells this sequence holds, positions 0..len-1.
	// An idle slot keeps its cells so a later prompt with the same prefix (the next
	// agent turn, a shared few-shot prompt) can reuse them. Only cutKV, shareKV
	// and decoded change it, each together with the cells.
	kv         []Token
	adapterKey string // the adapter set the cells were computed with
	lastUse    int64  // scheduler tick of the last decode or admission
	req        *slotRequest
}

// slotRequest is the request running on a slot; a new one for every admission,
// so nothing of an earlier request can leak into the next.
type slotRequest struct {
	job       *job
	pending   []Token // prompt tokens still to decode
	next      Token   // sampled token to decode in the next step (generation phase)
	hasNext   bool
	text      textStream
	firstTok  time.Time // when the first token was sampled
	cached    int       // prompt tokens whose cells were reused
	generated []Token
	logProbs  []float32 // of generated, when the request asked for them
	// lastLogProb is log p of the token just sampled; sampleRow sets it
	// (rows are sampled concurrently, each writing only its own slot) and
	// afterLogits keeps it when it keeps the token.
	lastLogProb float32
}

func (s *slot) active() bool { return s.req != nil }

// cutKV drops the cells of s from position n on.
func (e *Engine) cutKV(s *slot, n int) {
	e.ctx.SeqRemove(s.id, n, -1)
	s.kv = s.kv[:n]
}

// shareKV gives dst the cells of src's first n tokens in place of its own.
func (e *Engine) shareKV(dst, src *slot, n int) {
	e.cutKV(dst, 0)
	if n == 0 {
		return
	}
	if e.opts.Context.KVUnified {
		// Same buffer: the cells become shared, nothing is copied.
		e.ctx.SeqCopy(src.id, dst.id, 0, n)
	} else {
		// Separate streams: llama.cpp copies a whole stream, so copy it and cut
		// the copy back to the shared prefix.
		e.ctx.SeqCopy(src.id, dst.id, -1, -1)
		e.ctx.SeqRemove(dst.id, n, -1)
	}
	dst.kv = append(dst.kv, src.kv[:n]...)
}

// decoded records tokens a successful decode just stored in the cells of s.
func (s *slot) decoded(toks ...Token) { s.kv = append(s.kv, toks...) }

// run is the scheduler: the only goroutine that touches the context.
func (e *Engine) run() {
	defer close(e.done)
	slots := make([]*slot, e.ctx.NSeqMax())
	for i := range slots {
		slots[i] = &slot{id: i}
	}
	var queue []*job
	var tick int64
	// The adapter set on the context; unknown after a failed change, when the
	// next group must set its own whatever its key.
	curAdapters, adaptersKnown := "", true
	batch := &Batch{}

	failAll := func(err error) {
		for _, s := range slots {
			if s.req != nil {
				s.req.job.finish(nil, err)
				s.req = nil
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
				if err := s.req.job.ctx.Err(); err != nil {
					e.release(s, nil, err)
				}
			}
		}

		queue = e.admit(slots, queue, tick)

		// One decode per adapter set per step.
		groups := map[string][]*slot{}
		var order []string
		for _, s := range slots {
			if !s.active() || (!s.req.hasNext && len(s.req.pending) == 0) {
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
			if key != curAdapters || !adaptersKnown {
				if err := e.applyAdapters(group[0].req.job.req.Adapters); err != nil {
					for _, s := range group {
						e.release(s, nil, err)
					}
					adaptersKnown = false
					continue
				}
				curAdapters, adaptersKnown = key, true
			}
			e.step(slots, group, batch, tick)
		}
	}
}

// admit moves queued jobs into idle slots, reusing cached prefixes.
func (e *Engine) admit(slots []*slot, queue []*job, tick int64) []*job {
	var waiting []*job
	for qi, j := range queue {
		a := chooseAdmission(slots, j.prompt, j.adapterKey, e.opts.MinSharedPrefix, e.opts.NoPrefixReuse)
		if a.wait {
			waiting = append(waiting, j)
			continue
		}
		if a.target == nil {
			return append(waiting, queue[qi:]...)
		}
		t, src, reuse := a.target, a.src, a.reuse
		if t == src {
			e.cutKV(t, reuse)
		} else {
			e.shareKV(t, src, reuse)
		}
		t.adapterKey = j.adapterKey
		t.lastUse = tick
		t.req = &slotRequest{job: j, pending: j.prompt[reuse:], cached: reuse}
		t.req.text.reset(j.req.Stop)
		j.admitted = time.Now()
		e.stats.promptTokens.Add(int64(len(j.prompt)))
		e.stats.promptReused.Add(int64(reuse))
	}
	return waiting
}

// admission is where a queued prompt goes.
type admission struct {
	// wait: a sequence in flight is decoding a prefix of this prompt at least
	// MinSharedPrefix tokens longer than any cached one; wait and share its cells.
	wait bool
	// target is the idle slot to run in; nil (without wait) when none is idle.
	target *slot
	// src holds the longest reusable prefix (nil: none); it may be target itself.
	src *slot
	// reuse is the number of prompt tokens whose cells come from src.
	reuse int
}

// chooseAdmission picks the source of reusable cells and the target slot for a
// prompt with adapter set key. It only reads the slots, so the choice is tested
// without a model.
func chooseAdmission(slots []*slot, prompt []Token, key string, minShared int, noReuse bool) admission {
	var free []*slot
	for _, s := range slots {
		if !s.active() {
			free = append(free, s)
		}
	}
	if len(free) == 0 {
		return admission{}
	}
	// Best source of reusable cells: the longest common prefix with what any
	// sequence of the same adapter set holds now, and with what it will hold once
	// its pending prompt is decoded.
	var src *slot
	best, bestFuture := 0, 0
	if !noReuse {
		for _, s := range slots {
			if s.adapterKey != key {
				continue
			}
			if n := commonPrefix(s.kv, prompt); n > best || (n == best && src != nil && !s.active() && src.active()) {
				best, src = n, s
			}
			if s.active() && len(s.req.pending) > 0 {
				n := commonPrefix(s.kv, prompt)
				if n == len(s.kv) {
					n += commonPrefix(s.req.pending, prompt[n:])
				}
				bestFuture = max(bestFuture, n)
			}
		}
	}
	if bestFuture >= best+minShared {
		// A sequence in flight is decoding this prefix right now: wait one step
		// and share its cells instead of decoding the same tokens twice.
		return admission{wait: true}
	}
	// Target: the source itself when it is idle, else the idle slot whose cache
	// is least useful (shortest, then least recently used, then the lowest id:
	// sequences packed at low ids decode in fewer passes, see planStep).
	t := src
	if src == nil || src.active() {
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
	if reuse >= len(prompt) {
		reuse = len(prompt) - 1 // the last prompt token must be decoded for logits
	}
	return admission{target: t, src: src, reuse: reuse}
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
			s, q := f.s, f.s.req
			switch {
			case f.n == 0: // a bridge: one throwaway token, removed after the decode
				batch.Add(0, len(s.kv), s.id, false)
				bridges = append(bridges, f)
			case q.hasNext:
				batch.Add(q.next, len(s.kv), s.id, true)
				rows = append(rows, row{s, batch.Len() - 1})
				fed = append(fed, f)
			default:
				for i := 0; i < f.n; i++ {
					last := i == f.n-1 && f.n == len(q.pending)
					batch.Add(q.pending[i], len(s.kv)+i, s.id, last)
					if last {
						rows = append(rows, row{s, batch.Len() - 1})
					}
				}
				fed = append(fed, f)
			}
		}
		err := e.ctx.Decode(batch)
		for _, f := range bridges {
			e.cutKV(f.s, len(f.s.kv))
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
				if s.req.job.admitted.After(victim.req.job.admitted) {
					victim = s
				}
			}
			e.release(victim, nil, ErrContextFull)
			e.cutKV(victim, 0)
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
			s, q := f.s, f.s.req
			if q.hasNext && f.n == 1 && len(q.pending) == 0 {
				s.decoded(q.next)
				q.hasNext = false
			} else {
				s.decoded(q.pending[:f.n]...)
				q.pending = q.pending[f.n:]
				e.stats.promptDecoded.Add(int64(f.n))
			}
			s.lastUse = tick
		}
		toks := make([]Token, len(rows))
		errs := make([]error, len(rows))
		chains := 0
		for _, r := range rows {
			if !r.s.req.job.argmax {
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
			e.cutKV(s, 0)
			freed = true
		}
	}
	return freed
}

// sampleRow draws the next token of s from batch row idx. It touches only s's own
// sampler and reads the shared logits, so rows may be sampled concurrently.
func (e *Engine) sampleRow(s *slot, idx int) (Token, error) {
	var tok Token
	var err error
	if s.req.job.argmax {
		tok, err = e.ctx.Argmax(idx)
	} else {
		tok, err = s.req.job.smp.sample(e.ctx, idx)
	}
	if err != nil || !s.req.job.req.LogProbs {
		return tok, err
	}
	lp, _, err := e.ctx.TokenLogProbs([]int32{int32(idx)}, []Token{tok})
	if err != nil {
		return 0, err
	}
	s.req.lastLogProb = lp[0]
	return tok, nil
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
	q := s.req
	j := q.job
	if err != nil {
		e.release(s, nil, err)
		return
	}
	if len(q.generated) == 0 {
		q.firstTok = time.Now()
	}
	e.stats.generated.Add(1)
	if !j.req.IgnoreEOS && e.m.IsEOG(tok) {
		e.release(s, &Result{FinishReason: FinishStop}, nil)
		return
	}
	q.generated = append(q.generated, tok)
	if j.req.LogProbs {
		q.logProbs = append(q.logProbs, q.lastLogProb)
	}
	if stop := q.text.add(e.m.TokenPiece(tok, false)); stop != "" {
		e.release(s, &Result{FinishReason: FinishStop, StopString: stop}, nil)
		return
	}
	if j.req.MaxTokens > 0 && len(q.generated) >= j.req.MaxTokens {
		e.release(s, &Result{FinishReason: FinishLength}, nil)
		return
	}
	if len(s.kv)+1 >= e.ctx.NCtxSeq() {
		e.release(s, &Result{FinishReason: FinishLength, OutOfContext: true}, nil)
		return
	}
	// Hand over text that can no longer be part of a stop string.
	j.push(q.text.ready())
	q.next, q.hasNext = tok, true
}

// release finishes the request of s (with a result or an error) and makes s idle;
// its cells stay for later prompts to reuse.
func (e *Engine) release(s *slot, r *Result, err error) {
	q := s.req
	if q == nil {
		return
	}
	s.req = nil
	j := q.job
	if err != nil {
		j.finish(nil, err)
		return
	}
	j.push(q.text.rest())
	r.Text = q.text.text()
	r.Tokens = q.generated
	r.LogProbs = q.logProbs
	r.PromptTokens = len(j.prompt)
	r.CachedTokens = q.cached
	now := time.Now()
	if q.firstTok.IsZero() {
		r.PromptTime = now.Sub(j.admitted)
	} else {
		r.PromptTime = q.firstTok.Sub(j.admitted)
		r.GenTime = now.Sub(q.firstTok)
	}
	e.stats.requests.Add(1)
	j.finish(r, nil)
}
