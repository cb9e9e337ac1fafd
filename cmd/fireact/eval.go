package main

import (
	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/store"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:  "eval",
		Usage: "evaluate a student (base model or base + --lora) on a task split, clean or with --noise; prints EM, F1, turns, time and tokens",
		Flags: append(append(splitFlags(), agentFlags(string(agent.FormatAlpaca), false)...),
			&cli.StringFlag{Name: "method", Value: "react", Usage: "react, cot, reflexion or io"},
			&cli.StringFlag{Name: "compare", Usage: "print the per-question diff against run `RUN` (name or id)"},
		),
		Action: func(c *cli.Context) error {
			return runSplit(c, store.KindEval, []string{c.String("method")})
		},
	}
}
