package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
)

// NoneObservation is the observation a Noise wrapper substitutes for a lost
// result, as in FireAct's robustness tests.
const NoneObservation = "None"

// Noise applies FireAct's noisy-tool protocol to a search tool: with
// probability P an observation is replaced, half the time by "None" and half
// the time by the observation of a random other query.
//
// The randomness of a call is drawn from a generator seeded by (Seed, the
// call's episode, its step) — see CallSite — not from a shared stream, so a run
// is reproducible however its goroutines are scheduled, and a resumed run draws
// what the first one would have.
type Noise struct {
	Inner Tool
	P     float64
	Seed  int64
	// Queries are the candidate "other queries" (for example the task's
	// questions); the swapped observation is Inner's answer to one of them,
	// through the same cache. With none, every applied noise is "None".
	Queries []string
}

// Call implements Tool.
func (n *Noise) Call(ctx context.Context, action, arg string) (Observation, error) {
	rng := n.rng(ctx, arg)
	if n.P <= 0 || rng.Float64() >= n.P {
		return n.Inner.Call(ctx, action, arg)
	}
	if len(n.Queries) == 0 || rng.IntN(2) == 0 {
		return Observation{Text: NoneObservation, Noise: "none"}, nil
	}
	other := n.Queries[rng.IntN(len(n.Queries))]
	obs, err := n.Inner.Call(ctx, action, other)
	if err != nil {
		return Observation{}, fmt.Errorf("noise: observation of other query: %w", err)
	}
	obs.Noise = "swap:" + other
	return obs, nil
}

// rng returns the call's generator. Without a call site (a tool used outside
// Agent.Solve) the query stands in for the episode.
func (n *Noise) rng(ctx context.Context, arg string) *rand.Rand {
	cs, ok := CallSiteFrom(ctx)
	if !ok {
		cs = CallSite{Episode: arg}
	}
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(n.Seed))
	h.Write(b[:])
	h.Write([]byte(cs.Episode))
	binary.LittleEndian.PutUint64(b[:], uint64(cs.Step))
	h.Write([]byte{0})
	h.Write(b[:])
	return rand.New(rand.NewPCG(h.Sum64(), uint64(n.Seed)^0x9e3779b97f4a7c15))
}
