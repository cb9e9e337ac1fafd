package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst reorders a command line so that every flag of the selected command
// comes before its positional arguments.
//
// urfave/cli v2 parses a command's flags with Go's flag package, which stops at
// the first positional argument: `fireact import fireact-results trajs/x.json
// --task hotpotqa` would leave --task unread ("Required flag task not set").
// Users of llama.cpp, git and go write flags after file names, and the README
// does too, so we move them in front before cli sees the line. A flag that takes
// a value keeps the token after it (unless written --name=value); everything
// after a bare "--" stays positional, as with Go's flag package; a token that
// does not name one of the command's flags is left as a flag for cli to report.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	// Global flags of the app come before the command name; keep them there.
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		out = append(out, rest[0])
		rest = rest[1:]
	}
	var cmd *cli.Command
	cmds := app.Commands
	for len(rest) > 0 {
		next := findCommand(cmds, rest[0])
		if next == nil {
			break
		}
		cmd = next
		out = append(out, rest[0])
		rest = rest[1:]
		cmds = cmd.Subcommands
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		// No command, or a parent whose subcommand is missing: cli prints
		// the help that says what to type.
		return append(out, rest...)
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		tv := false
		if d, ok := f.(cli.DocGenerationFlag); ok {
			tv = d.TakesValue()
		}
		for _, name := range f.Names() {
			takesValue[name] = tv
		}
	}
	var flags, positional []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			positional = append(positional, rest[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out = append(out, flags...)
	return append(out, positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
