package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeCommand is one command line of the README's shell blocks.
type readmeCommand struct {
	Line int      // 1-based line of README.md where it starts
	Text string   // as written, continuation lines joined
	Args []string // shell words, comments removed
}

// readmeCommands returns the command lines of the ```sh blocks of a README,
// with backslash continuations joined and trailing comments removed.
func readmeCommands(path string) ([]readmeCommand, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []readmeCommand
	sc := bufio.NewScanner(f)
	inBlock := false
	var cur *readmeCommand
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "```") {
			inBlock = !inBlock && strings.TrimPrefix(trim, "```") == "sh"
			continue
		}
		if !inBlock {
			continue
		}
		if cur == nil {
			if trim == "" || strings.HasPrefix(trim, "#") {
				continue
			}
			cur = &readmeCommand{Line: n}
		}
		cont := strings.HasSuffix(trim, "\\")
		cur.Text += strings.TrimSuffix(trim, "\\")
		if cont {
			cur.Text += " "
			continue
		}
		words, err := shellWords(cur.Text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, cur.Line, err)
		}
		cur.Args = words
		out = append(out, *cur)
		cur = nil
	}
	return out, sc.Err()
}

// shellWords splits a command line as sh would for the README's simple lines:
// single and double quotes, backslash escapes in double quotes, a # that starts
// a word begins a comment. Anything sh would expand ($, `, globs, pipes) is an
// error, so that a README line cannot mean more than this test runs.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words, nil
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				} else if s[i] == '$' || s[i] == '`' {
					return nil, fmt.Errorf("shell expansion in %q", s)
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		case strings.IndexByte("$`|&;<>*?()[]{}", c) >= 0:
			return nil, fmt.Errorf("%q: %c is not run by this test; write the line without it", s, c)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`fireact run -m a.gguf "Who directed the film?"  # comment`, []string{"fireact", "run", "-m", "a.gguf", "Who directed the film?"}},
		{`curl x -d '{"a":[1]}'`, []string{"curl", "x", "-d", `{"a":[1]}`}},
		{`a "b\"c" d#e`, []string{"a", `b"c`, "d#e"}},
	} {
		got, err := shellWords(tc.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("shellWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a [--lora x]`, `a $HOME`, `a "b`, `a | b`} {
		if _, err := shellWords(bad); err == nil {
			t.Errorf("shellWords(%q): no error", bad)
		}
	}
}

// runLine runs one fireact command line in this process, as main does.
func runLine(ctx context.Context, args []string) error {
	app := newApp()
	return app.RunContext(ctx, flagsFirst(app, args))
}

func readmePath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestREADMECommands runs every command line of the README's shell blocks, as
// written and in order, in a directory holding fixtures with the names the
// README uses: models made in code, FireAct's data (its real files, the large
// ones cut to their first records), a FireAct result file in its real layout,
// and an OpenAI-compatible teacher on 127.0.0.1 reached through
// OPENAI_BASE_URL, as the OpenAI SDKs read it. `make` lines are the set-up
// itself and are not run here; curl lines run against `fireact serve` when
// curl is installed.
func TestREADMECommands(t *testing.T) {
	cmds, err := readmeCommands(readmePath(t))
	if err != nil {
		t.Fatal(err)
	}
	fx := newReadmeFixtures(t)
	t.Chdir(fx.work)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var served chan error
	ran := 0
	for _, c := range cmds {
		where := fmt.Sprintf("README.md:%d: %s", c.Line, c.Text)
		switch c.Args[0] {
		case "make":
			continue
		case "curl":
			if served == nil {
				t.Errorf("%s: curl before any fireact serve line", where)
				continue
			}
			fx.curl(t, where, c.Args)
			ran++
			continue
		case "fireact":
		default:
			t.Errorf("%s: the README test knows no command %q", where, c.Args[0])
			continue
		}
		if len(c.Args) > 1 && c.Args[1] == "serve" {
			served = make(chan error, 1)
			go func() { served <- runLine(ctx, c.Args) }()
			if err := fx.waitServing(ctx, served); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			ran++
			continue
		}
		if len(c.Args) > 1 && c.Args[1] == "demo" {
			// The demo is `make demo`, run by its own test (demo/).
			continue
		}
		t.Logf("%s", where)
		if err := runLine(ctx, c.Args); err != nil {
			t.Errorf("%s\n  failed: %v", where, err)
		}
		ran++
	}
	if served != nil {
		cancel()
		if err := <-served; err != nil && ctx.Err() == nil {
			t.Errorf("fireact serve: %v", err)
		}
	}
	if ran < 10 {
		t.Fatalf("ran %d README command lines; the README has more than that", ran)
	}
}
