// Package wikienv reproduces, over an offline corpus, the observations of
// ReAct's Wikipedia environment (wikienv.py in github.com/ysymyth/ReAct):
// search[entity] shows a page's first five sentences or "Could not find X.
// Similar: [...]." with the nearest titles, and lookup[keyword] walks the
// sentences of the last page found that contain the keyword. The texts match
// wikienv's byte for byte, quirks included (the sentence split on ". " that
// gives a paragraph's last sentence two dots, the Python repr of the title
// list), so trajectories made offline read like ReAct's own.
//
// It is a leaf: the state of an episode is replayed from its calls (Replay),
// so the caller keeps no per-episode object and a cached search result still
// moves the page a later lookup reads.
package wikienv

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Action names of ReAct's Wikipedia environment.
const (
	ActionSearch = "search"
	ActionLookup = "lookup"
)

// NoMoreResults is the observation of a lookup past its last match (wikienv
// writes it with a trailing newline, which ReAct's transcripts drop).
const NoMoreResults = "No more results."

// SimilarTitles is how many titles a not-found search lists, as wikienv's
// result_titles[:5].
const SimilarTitles = 5

// PageSentences splits a page into sentences as wikienv does: paragraphs are
// its non-blank lines, sentences the non-blank parts of a paragraph split on
// ". ", each stripped and given a "." (so a sentence that already ended in "."
// gets a second one: that is wikienv's output and is kept).
func PageSentences(page string) []string {
	var out []string
	for _, p := range strings.Split(page, "\n") {
		p = pyStrip(p)
		if p == "" {
			continue
		}
		for _, s := range strings.Split(p, ". ") {
			if s = pyStrip(s); s != "" {
				out = append(out, s+".")
			}
		}
	}
	return out
}

// PageObservation is what search[entity] shows of a page found: its first
// five sentences joined by spaces (wikienv's get_page_obs).
func PageObservation(page string) string {
	s := PageSentences(page)
	if len(s) > 5 {
		s = s[:5]
	}
	return strings.Join(s, " ")
}

// NotFound is the observation of a search that names no page: the entity as
// written and up to SimilarTitles titles as a Python list.
func NotFound(entity string, titles []string) string {
	if len(titles) > SimilarTitles {
		titles = titles[:SimilarTitles]
	}
	return fmt.Sprintf("Could not find %s. Similar: %s.", entity, PyList(titles))
}

// LookupList is the sentences of page that contain keyword, compared
// case-insensitively (wikienv's construct_lookup_list).
func LookupList(page, keyword string) []string {
	kw := strings.ToLower(keyword)
	var out []string
	for _, s := range PageSentences(page) {
		if strings.Contains(strings.ToLower(s), kw) {
			out = append(out, s)
		}
	}
	return out
}

// LookupResult is the observation of the i-th (1-based) of n matches.
func LookupResult(i, n int, sentence string) string {
	return fmt.Sprintf("(Result %d / %d) %s", i, n, sentence)
}

// Call is one tool call of an episode, in order.
type Call struct {
	Action string // ActionSearch or ActionLookup; others are ignored
	Arg    string
}

// Resolver returns the page a search for entity lands on and whether it found
// one (false: wikienv would answer NotFound and keep its current page).
type Resolver func(entity string) (page string, found bool, err error)

// Lookup answers lookup[keyword] after the episode's earlier calls: the page
// is that of the last search that found one (a search that found nothing
// leaves page and lookup position alone, as in wikienv), and the position
// counts the lookups since then, restarting whenever the keyword changes
// (compared exactly, as wikienv does). Only the searches after the last
// successful one and that one are resolved.
func Lookup(history []Call, keyword string, resolve Resolver) (string, error) {
	start, page, found := len(history), "", false
	for i := len(history) - 1; i >= 0 && !found; i-- {
		if history[i].Action != ActionSearch {
			continue
		}
		p, ok, err := resolve(history[i].Arg)
		if err != nil {
			return "", err
		}
		if ok {
			start, page, found = i+1, p, true
		}
	}
	if !found {
		start = 0 // no page yet: every lookup so far counted against none
	}
	var st lookupState
	for _, c := range history[start:] {
		if c.Action == ActionLookup {
			st.next(page, found, c.Arg)
		}
	}
	return st.next(page, found, keyword), nil
}

// lookupState is wikienv's lookup_keyword, lookup_list and lookup_cnt.
type lookupState struct {
	set     bool
	keyword string
	list    []string
	cnt     int
}

func (st *lookupState) next(page string, havePage bool, keyword string) string {
	if !st.set || st.keyword != keyword {
		st.set, st.keyword, st.cnt = true, keyword, 0
		st.list = nil
		if havePage {
			st.list = LookupList(page, keyword)
		}
	}
	if st.cnt >= len(st.list) {
		return NoMoreResults
	}
	st.cnt++
	return LookupResult(st.cnt, len(st.list), st.list[st.cnt-1])
}

// PyList formats strings as Python's repr of a list of str does.
func PyList(items []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(PyRepr(s))
	}
	b.WriteByte(']')
	return b.String()
}

// PyRepr formats s as Python 3's repr of a str: single quotes unless s holds
// a single quote and no double quote; backslash, the quote, \t, \n and \r
// escaped; other non-printable characters as \xhh, \uhhhh or \Uhhhhhhhh.
// Invalid UTF-8 bytes are shown as U+FFFD would be, printable.
func PyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == utf8.RuneError || unicode.IsPrint(r):
			// Go's IsPrint and Python's isprintable agree: letters, marks,
			// numbers, punctuation, symbols and the ASCII space.
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// pyStrip is Python's str.strip(): Unicode white space, which besides Go's
// also counts the separators U+001C to U+001F.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}
