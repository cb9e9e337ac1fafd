package agent

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/fireact/fireact/agent/turn"
	"github.com/fireact/fireact/store"
)

// DefaultSnippetChars bounds a local search observation, about the length of
// the Google snippets FireAct's teacher saw (and short enough to keep a
// student's context small).
const DefaultSnippetChars = 400

// titleCandidates is how many BM25 hits are checked for an exact title match.
const titleCandidates = 5

// NoResult is the observation of a search with no match.
const NoResult = "No results found."

// LocalSearch is BM25 search over one corpus of the store's FTS5 index (filled
// by `fireact index`). Like FireAct's search tool, which returns a snippet of
// the best page, it answers with the top document's first paragraph, cut at a
// sentence or word boundary to at most MaxChars.
type LocalSearch struct {
	Store  *store.Store
	Corpus string
	// MaxChars bounds the observation (0: DefaultSnippetChars).
	MaxChars int
}

// Call implements Tool.
func (l *LocalSearch) Call(ctx context.Context, action, arg string) (Observation, error) {
	if action != turn.ActionSearch {
		return Observation{}, fmt.Errorf("local search: %w %q", ErrUnknownAction, action)
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
