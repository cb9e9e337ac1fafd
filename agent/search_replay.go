package agent

import (
	"context"
	"fmt"

	"github.com/fireact/fireact/agent/turn"
	"github.com/fireact/fireact/store"
)

// ReplayMiss is the observation of a query that the tool cache does not hold.
const ReplayMiss = "No result: this query is not in the tool cache (replay search answers only from cached results)."

// Replay answers searches from the store's tool cache only, never the network:
// runs replay what earlier runs (or imports) recorded. Backends are the cache
// namespaces to look in, in order.
type Replay struct {
	Store    *store.Store
	Backends []string
}

// Call implements Tool.
func (r *Replay) Call(ctx context.Context, action, arg string) (Observation, error) {
	if action != turn.ActionSearch {
		return Observation{}, fmt.Errorf("replay: %w %q", ErrUnknownAction, action)
	}
	for _, b := range r.Backends {
		e, ok, err := r.Store.CacheGet(ctx, b, arg)
		if err != nil {
			return Observation{}, fmt.Errorf("replay: %w", err)
		}
		if ok {
			return Observation{Text: e.Result, Cached: true}, nil
		}
	}
	return Observation{Text: ReplayMiss}, nil
}
