// Package turn parses a model's turn text into a thought and an action, the
// FireAct way (tolerating the quirks of real model output). It is a leaf with
// no cgo below it, so `go test -fuzz` runs it without rebuilding llama.cpp.
package turn

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Action names a turn may use. Lookup is ReAct's Wikipedia action (the next
// sentence of the last page found that holds a keyword); the parser accepts
// it always, and the agent treats it as malformed where its search tool has
// no lookup (FireAct's prompts never use it).
const (
	ActionSearch = "search"
	ActionLookup = "lookup"
	ActionFinish = "finish"
)

// Turn is one model turn parsed into a thought and an action.
type Turn struct {
	Thought  string
	Action   string // ActionSearch, ActionLookup or ActionFinish
	Argument string
}

// Parse errors. Both lead to the re-ask path.
var (
	// ErrNoAction means the text has no action line.
	ErrNoAction = errors.New("turn: no action in model output")
	// ErrBadAction means the action line does not name a known action with a
	// non-empty argument.
	ErrBadAction = errors.New("turn: malformed action in model output")
)

var (
	// A label at the start of the text that the prompt already wrote (models
	// often repeat it, numbered or not).
	thoughtLabel = regexp.MustCompile(`(?i)^\s*thought(?:\s*\d+)?\s*:`)
	// The first action label anywhere: on its own line or inline after the
	// thought (a quirk of weaker models).
	actionLabel = regexp.MustCompile(`(?i)\baction(?:\s*\d+)?\s*:[ \t]*`)
	// "Answer: X" is how CoT and IO prompts (FireAct's prompt files) finish.
	answerLabel = regexp.MustCompile(`(?i)(?:^|\n)[ \t]*(?:final\s+)?answer\s*:[ \t]*`)
	// name[argument, with the argument running to the last "]" of the line.
	actionCall = regexp.MustCompile(`^([A-Za-z_]+)[ \t]*\[(.*)$`)
	spaces     = regexp.MustCompile(`\s+`)
)

// Parse parses a model turn: the text generated after the prompt's
// "Thought:" (a repeated label is tolerated). It accepts FireAct's quirks: a
// missing thought, numbered labels, an inline "Action:", capitalised action
// names, spaces before "[", a missing "]", trailing text after the action, and
// "Answer: X" for finish[X]. The thought keeps the text before the action with
// its white space folded, so it renders on one line.
func Parse(text string) (Turn, error) {
	rest := text
	for {
		loc := thoughtLabel.FindStringIndex(rest)
		if loc == nil {
			break
		}
		rest = rest[loc[1]:]
	}
	if loc := actionLabel.FindStringIndex(rest); loc != nil {
		thought := Fold(rest[:loc[0]])
		name, arg, err := parseActionLine(FirstLine(rest[loc[1]:]))
		if err != nil {
			return Turn{Thought: thought}, err
		}
		return Turn{Thought: thought, Action: name, Argument: arg}, nil
	}
	if loc := answerLabel.FindStringIndex(rest); loc != nil {
		thought := Fold(rest[:loc[0]])
		ans := strings.TrimSpace(FirstLine(rest[loc[1]:]))
		if ans == "" {
			return Turn{Thought: thought}, fmt.Errorf("%w: empty answer", ErrBadAction)
		}
		return Turn{Thought: thought, Action: ActionFinish, Argument: ans}, nil
	}
	return Turn{Thought: Fold(rest)}, ErrNoAction
}

// ParseAction parses the text generated after a re-ask prompt's "Action:".
func ParseAction(text string) (name, arg string, err error) {
	return parseActionLine(FirstLine(strings.TrimLeft(text, " \t\r\n")))
}

// ParseAnswer parses an IO turn: the text after "Answer:", up to its line end.
func ParseAnswer(text string) (string, error) {
	t := text
	if loc := answerLabel.FindStringIndex(t); loc != nil && strings.TrimSpace(t[:loc[0]]) == "" {
		t = t[loc[1]:]
	}
	ans := strings.TrimSpace(FirstLine(strings.TrimLeft(t, " \t\r\n")))
	if ans == "" {
		return "", fmt.Errorf("%w: empty answer", ErrBadAction)
	}
	return ans, nil
}

func parseActionLine(line string) (name, arg string, err error) {
	line = strings.TrimSpace(line)
	m := actionCall.FindStringSubmatch(line)
	if m == nil {
		return "", "", fmt.Errorf("%w: %q", ErrBadAction, Clip(line, 80))
	}
	name = strings.ToLower(m[1])
	if name != ActionSearch && name != ActionLookup && name != ActionFinish {
		return "", "", fmt.Errorf("%w: unknown action %q", ErrBadAction, m[1])
	}
	arg = m[2]
	if i := strings.LastIndexByte(arg, ']'); i >= 0 {
		arg = arg[:i] // text after the closing bracket is the model rambling on
	}
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return "", "", fmt.Errorf("%w: empty argument of %s", ErrBadAction, name)
	}
	return name, arg, nil
}

// FirstLine returns s up to its first line break.
func FirstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// Fold trims s and folds white space runs (newlines included) to one space.
func Fold(s string) string {
	return strings.TrimSpace(spaces.ReplaceAllString(s, " "))
}

// Clip shortens s to at most n bytes for error messages, on a rune boundary.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
