package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/fireact/fireact/agent/turn"
)

// TestGrammarActions: the action alternation offers lookup exactly when the
// search tool has it, and the FireAct-style grammar is unchanged.
func TestGrammarActions(t *testing.T) {
	tests := []struct {
		tools, lookup bool
		want          string
	}{
		{false, false, `"finish"`},
		{false, true, `"finish"`},
		{true, false, `("search" | "finish")`},
		{true, true, `("search" | "lookup" | "finish")`},
	}
	for _, tc := range tests {
		if got := grammarActions(tc.tools, tc.lookup); got != tc.want {
			t.Errorf("grammarActions(%v, %v) = %s, want %s", tc.tools, tc.lookup, got, tc.want)
		}
		for _, g := range []string{turnGrammar(tc.tools, tc.lookup), actionGrammar(tc.tools, tc.lookup)} {
			if !strings.Contains(g, " "+tc.want+` "["`) {
				t.Errorf("grammar lacks %s:\n%s", tc.want, g)
			}
		}
	}
}

// TestGrammarSamplesLookup samples re-ask action lines from the tiny model
// under the grammar: with lookup, all three actions come out and parse;
// without, lookup never does. The model is untrained, so at temperature 1.5
// the grammar is what decides the action.
func TestGrammarSamplesLookup(t *testing.T) {
	e := newEngine(t, 1, false)
	llm := &LocalLLM{Engine: e}
	ctx := context.Background()
	for _, lookup := range []bool{true, false} {
		seen := map[string]int{}
		for seed := int64(1); seed <= 24; seed++ {
			r, err := llm.Complete(ctx, Request{Prompt: "Question: where?\nThought: find it\nAction:", Grammar: actionGrammar(true, lookup),
				MaxTokens: grammarMaxTokens, Temperature: 1.5, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			name, _, err := turn.ParseAction(r.Text)
			if err != nil {
				t.Fatalf("lookup %v seed %d: %q does not parse: %v", lookup, seed, r.Text, err)
			}
			seen[name]++
		}
		t.Logf("lookup %v: sampled actions %v", lookup, seen)
		if lookup && (seen["lookup"] == 0 || seen["search"] == 0 || seen["finish"] == 0) {
			t.Errorf("with lookup, sampled actions %v: want all three", seen)
		}
		if !lookup && seen["lookup"] > 0 {
			t.Errorf("without lookup, sampled actions %v", seen)
		}
	}
}
