package turn

import (
	"errors"
	"strings"
	"testing"

	"github.com/fireact/fireact/store/trajectory"
)

func TestParseTurn(t *testing.T) {
	tests := []struct {
		name, in             string
		thought, action, arg string
		err                  error
	}{
		{"canonical", " I need X.\nAction: search[X]", "I need X.", "search", "X", nil},
		{"repeated label", "Thought: I need X.\nAction: search[X]", "I need X.", "search", "X", nil},
		{"numbered", " Thought 2: find it\nAction 2: Search[Paris ]", "find it", "search", "Paris", nil},
		{"missing thought", "Action: finish[42]", "", "finish", "42", nil},
		{"inline action", " So it is Y. Action: finish[Y]", "So it is Y.", "finish", "Y", nil},
		{"trailing text", " ok\nAction: finish[Y] because\nObservation: x", "ok", "finish", "Y", nil},
		{"missing bracket", " ok\nAction: search[Eiffel Tower", "ok", "search", "Eiffel Tower", nil},
		{"space before bracket", " ok\nAction: search [a b]", "ok", "search", "a b", nil},
		{"nested brackets", " ok\nAction: search[a [b] c]", "ok", "search", "a [b] c", nil},
		{"multi-line thought", " one\ntwo\n\nAction: finish[z]", "one two", "finish", "z", nil},
		{"answer label", " Mozart was born in Salzburg.\nAnswer: Salzburg", "Mozart was born in Salzburg.", "finish", "Salzburg", nil},
		{"no action", " just thinking", "just thinking", "", "", ErrNoAction},
		{"lookup", " The page may say when.\nAction: lookup[born]", "The page may say when.", "lookup", "born", nil},
		{"lookup capitalised, numbered", " Thought 3: look\nAction 3: Lookup [director ]", "look", "lookup", "director", nil},
		{"lookup inline", " Check it. Action: lookup[award]", "Check it.", "lookup", "award", nil},
		{"empty lookup", " hm\nAction: lookup[]", "hm", "", "", ErrBadAction},
		{"unknown action", " hm\nAction: think[x]", "hm", "", "", ErrBadAction},
		{"empty arg", " hm\nAction: search[]", "hm", "", "", ErrBadAction},
		{"no brackets", " hm\nAction: finish", "hm", "", "", ErrBadAction},
		{"empty", "", "", "", "", ErrNoAction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if got.Thought != tc.thought || got.Action != tc.action || got.Argument != tc.arg {
				t.Fatalf("got %+v, want thought %q action %q arg %q", got, tc.thought, tc.action, tc.arg)
			}
		})
	}
}

func TestParseActionAndAnswer(t *testing.T) {
	if n, a, err := ParseAction(" finish[Richard Nixon]"); err != nil || n != "finish" || a != "Richard Nixon" {
		t.Fatalf("ParseAction = %q %q %v", n, a, err)
	}
	if n, a, err := ParseAction(" lookup[first film]\nObservation: x"); err != nil || n != "lookup" || a != "first film" {
		t.Fatalf("ParseAction(lookup) = %q %q %v", n, a, err)
	}
	if _, _, err := ParseAction(" dance"); !errors.Is(err, ErrBadAction) {
		t.Fatalf("ParseAction(dance) err = %v", err)
	}
	if a, err := ParseAnswer(" Salzburg\nnext"); err != nil || a != "Salzburg" {
		t.Fatalf("ParseAnswer = %q %v", a, err)
	}
	if _, err := ParseAnswer("  \n"); err == nil {
		t.Fatal("ParseAnswer of blank text succeeded")
	}
}

// FuzzParseTurn checks that the parser never panics, that a parsed turn is a
// valid single-line action, and that rendering it with the trajectory renderer
// and parsing again gives the same turn (what the agent records is what a
// student is trained on and prompted with).
func FuzzParseTurn(f *testing.F) {
	for _, s := range []string{
		" I need X.\nAction: search[X]", "Thought 1: a\nAction 1: Finish[b]", "Action: finish[42]",
		" So Y. Action: finish[Y]", " ok\nAction: search[a [b] c] tail", " x\nAnswer: y", "",
		" Thought: Thought: a\nAction: search[", "Action:\n:[]", " \u00e9\nAction : finish[\u00fc]]", " look\nAction: Lookup[born]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		turn, err := Parse(s)
		if err != nil {
			return
		}
		if turn.Action != ActionSearch && turn.Action != ActionLookup && turn.Action != ActionFinish {
			t.Fatalf("action %q", turn.Action)
		}
		if turn.Argument == "" || strings.ContainsAny(turn.Argument, "\r\n") || strings.ContainsAny(turn.Thought, "\r\n") {
			t.Fatalf("bad turn %+v", turn)
		}
		text := trajectory.RenderAgentPart(trajectory.Step{Thought: turn.Thought, Action: turn.Action, Argument: turn.Argument}, 0)
		again, err := Parse(text)
		if err != nil || again != turn {
			t.Fatalf("round trip of %q: %+v (%v), want %+v", text, again, err, turn)
		}
	})
}
