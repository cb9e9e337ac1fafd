package agent

import (
	"context"
	"fmt"

	"github.com/fireact/fireact/agent/turn"
	"github.com/fireact/fireact/store"
)

// Cache serves a tool's answers from the store's tool cache and fills the
// cache on a miss; a hit never calls the wrapped tool (so never the network).
// Errors of the wrapped tool are not cached: a later call tries again. Only
// search is cached: a lookup's answer depends on the episode's earlier calls,
// not on its argument alone, so it always goes to the wrapped tool.
type Cache struct {
	Inner Tool
	Store *store.Store
	// Backend is the cache namespace: results of different backends (or of
	// different corpora) must not answer for each other.
	Backend string
}

// Call implements Tool.
func (c *Cache) Call(ctx context.Context, action, arg string) (Observation, error) {
	if action != turn.ActionSearch {
		return c.Inner.Call(ctx, action, arg)
	}
	e, ok, err := c.Store.CacheGet(ctx, c.Backend, arg)
	if err != nil {
		return Observation{}, fmt.Errorf("cache %s: %w", c.Backend, err)
	}
	if ok {
		return Observation{Text: e.Result, Cached: true}, nil
	}
	obs, err := c.Inner.Call(ctx, action, arg)
	if err != nil {
		return Observation{}, err
	}
	if err := c.Store.CachePut(ctx, c.Backend, arg, obs.Text); err != nil {
		return Observation{}, fmt.Errorf("cache %s: %w", c.Backend, err)
	}
	return obs, nil
}
