package llama

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
		if !s.req.hasNext && len(s.req.pending) > 0 && (chunk == nil || s.req.job.admitted.Before(chunk.req.job.admitted)) {
			chunk = s
		}
	}
	var plan []feed
	used := 0
	for _, s := range group {
		if (s.req.hasNext || len(s.req.pending) > 0) && used < nb {
			plan = append(plan, feed{s, 1})
			used++
		}
	}
	// Generation tokens come first: a long prompt must not stall sequences
	// already producing text, so prompts share only the room that is left.
	for i := range plan {
		s := plan[i].s
		if s.req.hasNext || (!neverSplit && s != chunk) {
			continue
		}
		n := min(len(s.req.pending), nb-used+1)
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
