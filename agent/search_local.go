package agent

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/fireact/fireact/agent/turn"
	"github.com/fireact/fireact/agent/wikienv"
	"github.com/fireact/fireact/store"
)

// DefaultSnippetChars bounds a local search observation, about the length of
// the Google snippets FireAct's teacher saw (and short enough to keep a
// student's context small).
const DefaultSnippetChars = 400

// titleCandidates is how many BM25 hits are checked for an exact title match.
const titleCandidates = 5

// reactCandidates is how many BM25 hits ReAct-style search checks for a page
// titled like the entity before answering "Could not find": Wikipedia's own
// search goes to such a page whatever its rank, so look further than the five
// titles the observation lists.
const reactCandidates = 20

// Search styles: what a local search observation looks like.
const (
	// SearchStyleFireAct (the default) answers search[query] with a snippet
	// of the best page, as FireAct's Google search tool did (its prompts and
	// fine-tuning data were made that way); there is no lookup.
	SearchStyleFireAct = "fireact"
	// SearchStyleReAct is ReAct's Wikipedia environment (wikienv.py):
	// search[entity] shows the first five sentences of the page titled
	// entity, or "Could not find entity. Similar: [...]." with the top five
	// BM25 titles; lookup[keyword] shows the next sentence holding keyword in
	// the last page found, "(Result i / n) ...", then "No more results.".
	SearchStyleReAct = "react"
)

// SearchStyles lists the styles ParseSearchStyle accepts.
func SearchStyles() []string { return []string{SearchStyleFireAct, SearchStyleReAct} }

// ParseSearchStyle checks a search style name; "" is SearchStyleFireAct.
func ParseSearchStyle(s string) (string, error) {
	switch st := strings.ToLower(strings.TrimSpace(s)); st {
	case "", SearchStyleFireAct:
		return SearchStyleFireAct, nil
	case SearchStyleReAct:
		return st, nil
	}
	return "", fmt.Errorf("agent: unknown search style %q (want %s)", s, strings.Join(SearchStyles(), " or "))
}

// NoResult is the observation of a search with no match.
const NoResult = "No results found."

// LocalSearch is BM25 search over one corpus of the store's FTS5 index (filled
// by `fireact index`). In the default style, like FireAct's search tool, which
// returns a snippet of the best page, it answers with the top document's first
// paragraph, cut at a sentence or word boundary to at most MaxChars. In
// SearchStyleReAct it is ReAct's Wikipedia environment, with lookup.
//
// It holds no per-episode state, so one value serves any number of episodes
// at once: a lookup replays the episode's earlier calls (ToolHistoryFrom),
// re-resolving its searches, which are deterministic for a corpus version.
type LocalSearch struct {
	Store  *store.Store
	Corpus string
	// MaxChars bounds the observation of the FireAct style (0:
	// DefaultSnippetChars); the ReAct style shows five sentences, as wikienv.
	MaxChars int
	// Style is SearchStyleFireAct ("") or SearchStyleReAct.
	Style string
}

// Call implements Tool.
func (l *LocalSearch) Call(ctx context.Context, action, arg string) (Observation, error) {
	if l.Style == SearchStyleReAct {
		return l.callReAct(ctx, action, arg)
	}
	if action != turn.ActionSearch {
		return Observation{}, fmt.Errorf("local search: %w %q (lookup needs search style %s)", ErrUnknownAction, action, SearchStyleReAct)
	}
	docs, err := l.Store.SearchCorpus(ctx, l.Corpus, arg, titleCandidates)
	if err != nil {
		return Observation{}, fmt.Errorf("local search %s: %w", l.Corpus, err)
	}
	if len(docs) == 0 {
		return Observation{Text: NoResult}, nil
	}
	n := l.MaxChars
	if n <= 0 {
		n = DefaultSnippetChars
	}
	// search[entity] names a page, as FireAct's Wikipedia search does: a
	// document titled exactly like the query wins over one that only mentions
	// the words more often (a film's page citing its director, say).
	best := docs[0]
	for _, d := range docs {
		if strings.EqualFold(strings.TrimSpace(d.Title), strings.TrimSpace(arg)) {
			best = d
			break
		}
	}
	return Observation{Text: Snippet(best.Text, n)}, nil
}

// callReAct answers an action as ReAct's wikienv does.
func (l *LocalSearch) callReAct(ctx context.Context, action, arg string) (Observation, error) {
	switch action {
	case turn.ActionSearch:
		page, found, titles, err := l.resolve(ctx, arg)
		if err != nil {
			return Observation{}, err
		}
		if !found {
			return Observation{Text: wikienv.NotFound(arg, titles)}, nil
		}
		return Observation{Text: wikienv.PageObservation(page.Text)}, nil
	case turn.ActionLookup:
		hist := ToolHistoryFrom(ctx)
		calls := make([]wikienv.Call, len(hist))
		for i, c := range hist {
			calls[i] = wikienv.Call{Action: c.Action, Arg: c.Arg}
		}
		text, err := wikienv.Lookup(calls, arg, func(entity string) (string, bool, error) {
			page, found, _, err := l.resolve(ctx, entity)
			return page.Text, found, err
		})
		if err != nil {
			return Observation{}, err
		}
		return Observation{Text: text}, nil
	}
	return Observation{}, fmt.Errorf("local search: %w %q", ErrUnknownAction, action)
}

// resolve finds the page a ReAct search for entity lands on: the document
// titled entity (case-insensitively, as Wikipedia's search goes straight to
// such a page) among the top BM25 hits. Without one, titles are the top hits'
// titles, best first, for the "Similar" list.
func (l *LocalSearch) resolve(ctx context.Context, entity string) (page store.CorpusDoc, found bool, titles []string, err error) {
	docs, err := l.Store.SearchCorpus(ctx, l.Corpus, entity, reactCandidates)
	if err != nil {
		return store.CorpusDoc{}, false, nil, fmt.Errorf("local search %s: %w", l.Corpus, err)
	}
	want := strings.TrimSpace(entity)
	for _, d := range docs {
		if strings.EqualFold(strings.TrimSpace(d.Title), want) {
			return d, true, nil, nil
		}
	}
	for i := 0; i < len(docs) && i < wikienv.SimilarTitles; i++ {
		titles = append(titles, docs[i].Title)
	}
	return store.CorpusDoc{}, false, titles, nil
}

// Snippet returns the first paragraph of text shortened to at most n bytes:
// whole sentences when at least one fits, else whole words and "...".
func Snippet(text string, n int) string {
	p := strings.TrimSpace(text)
	if i := strings.Index(p, "\n\n"); i > 0 {
		p = p[:i]
	}
	p = turn.Fold(p)
	if len(p) <= n {
		return p
	}
	cut := p[:n]
	if i := strings.LastIndex(cut, ". "); i > 0 {
		return cut[:i+1]
	}
	if i := strings.LastIndexByte(cut, ' '); i > 0 {
		cut = cut[:i]
	} else {
		for len(cut) > 0 && !utf8.RuneStart(p[len(cut)]) {
			cut = cut[:len(cut)-1]
		}
	}
	return cut + "..."
}
