package agent

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"

	"github.com/fireact/fireact/store"
)

// NoneObservation is the observation a Noise wrapper substitutes for a lost
// result, as in FireAct's robustness tests.
const NoneObservation = "None"

// Noise kinds: FireAct's robustness test (paper, section 5) has two settings,
// "None" (the observation is replaced by "None") and "Random" (by the
// observation of another query). Mixed, ours, picks one of the two at random
// for every noisy call.
const (
	NoiseNone   = "none"
	NoiseRandom = "random"
	NoiseMixed  = "mixed"
)

// NoiseKinds lists the kinds ParseNoiseKind accepts.
func NoiseKinds() []string { return []string{NoiseNone, NoiseRandom, NoiseMixed} }

// ParseNoiseKind checks a noise kind name; "" is NoiseMixed, what runs
// recorded before the kinds were split did.
func ParseNoiseKind(s string) (string, error) {
	switch k := strings.ToLower(strings.TrimSpace(s)); k {
	case "":
		return NoiseMixed, nil
	case NoiseNone, NoiseRandom, NoiseMixed:
		return k, nil
	}
	return "", fmt.Errorf("agent: unknown noise kind %q (want %s)", s, strings.Join(NoiseKinds(), ", "))
}

// Noise applies FireAct's noisy-tool protocol to a search tool: with
// probability P an observation is replaced according to Kind.
//
// A "random" observation is drawn from Pool, observations already recorded,
// never from a new search: a search for another query would cost a paid API
// call and, through the cache, record a result nobody asked for.
//
// The randomness of a call is drawn from a generator seeded by (Seed, the
// call's episode, its step) — see CallSite — not from a shared stream, so a run
// is reproducible however its goroutines are scheduled, and, with the same
// Pool, a resumed run draws what the first one would have.
type Noise struct {
	Inner Tool
	P     float64
	Seed  int64
	// Kind is NoiseNone, NoiseRandom or NoiseMixed ("": mixed).
	Kind string
	// Pool holds the recorded observations of random noise, in a fixed order
	// (NewSearch: the tool cache of the backend, by query). A draw that finds
	// only the query's own observation falls back to "None".
	Pool []store.CacheEntry
}

// Call implements Tool.
func (n *Noise) Call(ctx context.Context, action, arg string) (Observation, error) {
	rng := n.rng(ctx, arg)
	if n.P <= 0 || rng.Float64() >= n.P {
		return n.Inner.Call(ctx, action, arg)
	}
	random := false
	switch n.Kind {
	case NoiseRandom:
		random = true
	case NoiseNone:
	default:
		random = rng.IntN(2) == 1
	}
	if random && len(n.Pool) > 0 {
		own := store.NormalizeQuery(arg)
		i := rng.IntN(len(n.Pool))
		for k := 0; k < len(n.Pool); k++ {
			e := n.Pool[(i+k)%len(n.Pool)]
			if e.Query != own {
				return Observation{Text: e.Result, Noise: "random:" + e.Query}, nil
			}
		}
	}
	return Observation{Text: NoneObservation, Noise: NoiseNone}, nil
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
