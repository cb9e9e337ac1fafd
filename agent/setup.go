package agent

import (
	"context"
	"fmt"

	"github.com/fireact/fireact/store"
)

// Search backend names.
const (
	SearchSerpAPI = "serpapi"
	SearchLocal   = "local"
	SearchReplay  = "replay"
	SearchNone    = "none"
)

// SearchOptions select and configure the search tool of a run.
type SearchOptions struct {
	// Backend is SearchSerpAPI, SearchLocal, SearchReplay or SearchNone.
	Backend string
	// Corpus is the local backend's corpus name.
	Corpus string
	// Style is the local backend's observation style: SearchStyleFireAct
	// ("", FireAct's snippet of the best page) or SearchStyleReAct (ReAct's
	// Wikipedia pages, not-found titles and lookup), which only the local
	// backend has.
	Style string
	// BaseURL overrides SerpAPI's endpoint.
	BaseURL string
	// ReplayFrom are the cache namespaces replay reads (default: serpapi and,
	// with a corpus in the store, LocalCacheBackend of its current version).
	ReplayFrom []string
	// Noise is the probability of FireAct's noisy observation (0: clean),
	// drawn with Seed; NoiseKind is NoiseNone, NoiseRandom or NoiseMixed ("":
	// mixed).
	Noise     float64
	NoiseKind string
	Seed      int64
}

// NewSearch builds the search tool chain of a run: the backend, behind the
// store's tool cache (except replay, which is the cache), behind the noise
// injector when Noise > 0. It returns nil for SearchNone. Local search over a
// corpus that is missing or empty fails here, before any question runs:
// otherwise every search would answer NoResult and the cache keep it. Random
// noise draws from the observations the cache holds now, which must not be
// empty.
func NewSearch(ctx context.Context, s *store.Store, o SearchOptions) (Tool, error) {
	var t Tool
	var namespaces []string
	style, err := ParseSearchStyle(o.Style)
	if err != nil {
		return nil, err
	}
	if style == SearchStyleReAct && o.Backend != SearchLocal && o.Backend != SearchNone && o.Backend != "" {
		return nil, fmt.Errorf("agent: search style %s (Wikipedia pages and lookup) needs the local search backend, not %q", style, o.Backend)
	}
	switch o.Backend {
	case SearchNone, "":
		return nil, nil
	case SearchLocal:
		if o.Corpus == "" {
			return nil, fmt.Errorf("agent: local search needs a corpus name (fireact index FILE --corpus NAME)")
		}
		v, err := s.CorpusVersion(ctx, o.Corpus)
		if err != nil {
			return nil, fmt.Errorf("agent: local search: %w", err)
		}
		if v.Docs == 0 {
			return nil, fmt.Errorf("agent: corpus %q in %s is missing or empty; index it first: fireact index FILE --corpus %s --db %s",
				o.Corpus, s.Path(), o.Corpus, s.Path())
		}
		ns := LocalCacheBackend(v)
		if style == SearchStyleReAct {
			// Another observation text for the same query: its own namespace,
			// so neither style's cached results answer for the other.
			ns += "+" + SearchStyleReAct
		}
		t = &Cache{Inner: &LocalSearch{Store: s, Corpus: o.Corpus, Style: style}, Store: s, Backend: ns}
		namespaces = []string{ns}
	case SearchSerpAPI:
		sa, err := NewSerpAPI(o.BaseURL)
		if err != nil {
			return nil, err
		}
		t = &Cache{Inner: sa, Store: s, Backend: SearchSerpAPI}
		namespaces = []string{SearchSerpAPI}
	case SearchReplay:
		from := o.ReplayFrom
		if len(from) == 0 {
			from = []string{SearchSerpAPI}
			if o.Corpus != "" {
				v, err := s.CorpusVersion(ctx, o.Corpus)
				if err != nil {
					return nil, fmt.Errorf("agent: replay: %w", err)
				}
				// Only results of the corpus's current content replay, as
				// for the cache in front of local search.
				if v.Docs > 0 {
					from = append(from, LocalCacheBackend(v))
				}
			}
		}
		t = &Replay{Store: s, Backends: from}
		namespaces = from
	default:
		return nil, fmt.Errorf("agent: unknown search backend %q (want serpapi, local, replay or none)", o.Backend)
	}
	if o.Noise > 0 {
		if o.Noise > 1 {
			return nil, fmt.Errorf("agent: noise probability %v is above 1", o.Noise)
		}
		kind, err := ParseNoiseKind(o.NoiseKind)
		if err != nil {
			return nil, err
		}
		n := &Noise{Inner: t, P: o.Noise, Seed: o.Seed, Kind: kind}
		if kind != NoiseNone {
			if n.Pool, err = s.CacheEntries(ctx, namespaces); err != nil {
				return nil, fmt.Errorf("agent: noise pool: %w", err)
			}
			if len(n.Pool) < 2 {
				return nil, fmt.Errorf("agent: %s noise replaces observations with recorded ones, and the tool cache (%v) holds %d: run once without noise first, or use noise kind none",
					kind, namespaces, len(n.Pool))
			}
		}
		t = n
	}
	return t, nil
}

// LocalCacheBackend is the tool-cache namespace of local search over one
// version of a corpus: "local:<corpus>@<fingerprint prefix>". Results cached
// from other content (before a re-index) live under another name, so they
// never answer for this one.
func LocalCacheBackend(v store.CorpusVersion) string {
	fp := v.Fingerprint
	if len(fp) > 16 {
		fp = fp[:16]
	}
	return "local:" + v.Corpus + "@" + fp
}
