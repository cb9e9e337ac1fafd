package wikienv

import (
	"errors"
	"reflect"
	"testing"
)

// The expected texts below were produced by running the functions of ReAct's
// wikienv.py (get_page_obs, construct_lookup_list, the lookup branch of step
// and the f-string of search_step) on the same inputs with CPython 3.

const annLee = "Ann Lee (born 1950) is a director. She directed The Long Road.  Lee won an award in 1990.\n\n  Her sister is Mary Lee. Mary wrote books\nLee. Last one.\n"

func TestPageObservation(t *testing.T) {
	tests := []struct{ page, want string }{
		{annLee, "Ann Lee (born 1950) is a director. She directed The Long Road. Lee won an award in 1990.. Her sister is Mary Lee. Mary wrote books."},
		{"One. Two. Three. Four. Five. Six. Seven.", "One. Two. Three. Four. Five."},
		{"", ""},
		{"\n \n", ""},
		{"No final stop", "No final stop."},
	}
	for _, tc := range tests {
		if got := PageObservation(tc.page); got != tc.want {
			t.Errorf("PageObservation(%q) = %q, want %q", tc.page, got, tc.want)
		}
	}
}

func TestLookupList(t *testing.T) {
	want := []string{"Ann Lee (born 1950) is a director.", "Lee won an award in 1990..", "Her sister is Mary Lee.", "Lee."}
	if got := LookupList(annLee, "lee"); !reflect.DeepEqual(got, want) {
		t.Fatalf("LookupList = %q, want %q", got, want)
	}
	if got := LookupList(annLee, "nowhere"); len(got) != 0 {
		t.Fatalf("LookupList(nowhere) = %q", got)
	}
}

func TestNotFoundFormatsLikePython(t *testing.T) {
	titles := []string{"Ann Lee", "O'Brien", `Say "hi"`, `It's "x"`, `back\slash`, "tab\there", "Zürich", "nb\u00a0sp", "zw\u200bsp", "\U0001F600", "ctl\x07"}
	// repr(titles) in CPython 3.
	wantList := `['Ann Lee', "O'Brien", 'Say "hi"', 'It\'s "x"', 'back\\slash', 'tab\there', 'Zürich', 'nb\xa0sp', 'zw\u200bsp', '😀', 'ctl\x07']`
	if got := PyList(titles); got != wantList {
		t.Errorf("PyList =\n%s\nwant\n%s", got, wantList)
	}
	want := `Could not find x y. Similar: ['Ann Lee', "O'Brien", 'Say "hi"', 'It\'s "x"', 'back\\slash'].`
	if got := NotFound("x y", titles); got != want {
		t.Errorf("NotFound =\n%s\nwant\n%s", got, want)
	}
	if got := NotFound("z", nil); got != "Could not find z. Similar: []." {
		t.Errorf("NotFound(no titles) = %q", got)
	}
}

// TestLookupReplaysWikienv runs the keyword sequence that wikienv answered
// (see the file comment) through Lookup, one call at a time with the history
// so far, and checks the position rules: a new keyword restarts, the same one
// advances, the end says "No more results." for good.
func TestLookupReplaysWikienv(t *testing.T) {
	pages := map[string]string{"Ann Lee": annLee, "Other": "Other page. It mentions award twice: award."}
	resolve := func(e string) (string, bool, error) { p, ok := pages[e]; return p, ok, nil }
	steps := []struct{ kw, want string }{
		{"Lee", "(Result 1 / 4) Ann Lee (born 1950) is a director."},
		{"Lee", "(Result 2 / 4) Lee won an award in 1990.."},
		{"award", "(Result 1 / 1) Lee won an award in 1990.."},
		{"Lee", "(Result 1 / 4) Ann Lee (born 1950) is a director."},
		{"Lee", "(Result 2 / 4) Lee won an award in 1990.."},
		{"Lee", "(Result 3 / 4) Her sister is Mary Lee."},
		{"Lee", "(Result 4 / 4) Lee."},
		{"Lee", NoMoreResults},
		{"zzz", NoMoreResults},
	}
	hist := []Call{{ActionSearch, "Ann Lee"}}
	for i, s := range steps {
		got, err := Lookup(hist, s.kw, resolve)
		if err != nil || got != s.want {
			t.Fatalf("lookup %d [%s] = %q, %v; want %q", i, s.kw, got, err, s.want)
		}
		hist = append(hist, Call{ActionLookup, s.kw})
	}
}

func TestLookupPageRules(t *testing.T) {
	pages := map[string]string{"Ann Lee": annLee, "Other": "Other page. Lee is not here but award is."}
	resolve := func(e string) (string, bool, error) { p, ok := pages[e]; return p, ok, nil }
	tests := []struct {
		name string
		hist []Call
		kw   string
		want string
	}{
		{"no search yet", nil, "Lee", NoMoreResults},
		{"only failed searches", []Call{{ActionSearch, "Nobody"}}, "Lee", NoMoreResults},
		// A failed search keeps the page and the position (wikienv changes
		// neither when it answers "Could not find").
		{"failed search keeps page", []Call{{ActionSearch, "Ann Lee"}, {ActionLookup, "Lee"}, {ActionSearch, "Nobody"}}, "Lee",
			"(Result 2 / 4) Lee won an award in 1990.."},
		// A successful search moves to its page and resets the position.
		{"new page resets", []Call{{ActionSearch, "Ann Lee"}, {ActionLookup, "award"}, {ActionSearch, "Other"}}, "award",
			"(Result 1 / 1) Lee is not here but award is.."},
		{"same page searched again resets", []Call{{ActionSearch, "Ann Lee"}, {ActionLookup, "Lee"}, {ActionSearch, "Ann Lee"}}, "Lee",
			"(Result 1 / 4) Ann Lee (born 1950) is a director."},
		{"case-insensitive match, exact keyword identity", []Call{{ActionSearch, "Ann Lee"}, {ActionLookup, "lee"}}, "LEE",
			"(Result 1 / 4) Ann Lee (born 1950) is a director."},
		{"other actions ignored", []Call{{ActionSearch, "Ann Lee"}, {ActionLookup, "Lee"}, {"finish", "x"}}, "Lee",
			"(Result 2 / 4) Lee won an award in 1990.."},
	}
	for _, tc := range tests {
		got, err := Lookup(tc.hist, tc.kw, resolve)
		if err != nil || got != tc.want {
			t.Errorf("%s: Lookup = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	boom := errors.New("boom")
	if _, err := Lookup([]Call{{ActionSearch, "x"}}, "k", func(string) (string, bool, error) { return "", false, boom }); !errors.Is(err, boom) {
		t.Fatalf("resolver error = %v, want boom", err)
	}
}
