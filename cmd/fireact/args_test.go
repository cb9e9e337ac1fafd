package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		// The README's line that failed with "Required flag task not set".
		{"fireact import fireact-results trajs/hotpotqa.json --task hotpotqa --split dev",
			"fireact import fireact-results --task hotpotqa --split dev trajs/hotpotqa.json"},
		{"fireact index wiki.jsonl --corpus wiki", "fireact index --corpus wiki wiki.jsonl"},
		// Bool flags take no value; the question stays positional.
		{"fireact run -m base.gguf Who? --grammar --format alpaca",
			"fireact run -m base.gguf --grammar --format alpaca Who?"},
		{"fireact info model.gguf --json", "fireact info --json model.gguf"},
		// --name=value is one token; a bare -- ends the flags.
		{"fireact perplexity text.txt --model=m.gguf -- -odd.txt",
			"fireact perplexity --model=m.gguf text.txt -- -odd.txt"},
		// A flag value that looks like a positional is not moved apart from its flag.
		{"fireact complete -p hello -m m.gguf", "fireact complete -p hello -m m.gguf"},
		// Already in order, unknown commands and parents without subcommand stay as they are.
		{"fireact import fireact-sft --name x a.json", "fireact import fireact-sft --name x a.json"},
		{"fireact nosuch a --b", "fireact nosuch a --b"},
		{"fireact import a.json --x", "fireact import a.json --x"},
		{"fireact", "fireact"},
	} {
		got := strings.Join(flagsFirst(app, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("flagsFirst(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestFlagsFirstKnowsEveryValueFlag checks the reordering against urfave/cli's
// own parse: for every command, a value flag written after a positional
// argument must come out in front of it together with its value.
func TestFlagsFirstKnowsEveryValueFlag(t *testing.T) {
	app := newApp()
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(slices.Clone(path), c.Name)
			if len(c.Subcommands) > 0 {
				walk(p, c.Subcommands)
				continue
			}
			for _, f := range c.Flags {
				d, ok := f.(cli.DocGenerationFlag)
				if !ok || !d.TakesValue() {
					continue
				}
				name := "--" + f.Names()[0]
				in := append(slices.Clone(p), "POS", name, "VAL")
				want := append(slices.Clone(p), name, "VAL", "POS")
				if got := flagsFirst(app, in); !slices.Equal(got, want) {
					t.Errorf("%v: got %v, want %v", in, got, want)
				}
			}
		}
	}
	walk([]string{"fireact"}, app.Commands)
}
