package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "answer one question, streaming the trajectory to the terminal",
		ArgsUsage: "\"QUESTION\"",
		Flags: append(agentFlags(string(agent.FormatFewShot), false),
			&cli.StringFlag{Name: "method", Value: "react", Usage: "react, cot, reflexion or io"},
			&cli.StringFlag{Name: "task", Usage: "task whose built-in examples and answer style to use (hotpotqa, strategyqa, mmlu)"},
			&cli.StringFlag{Name: "gold", Usage: "gold answer, to score the answer"},
			&cli.StringFlag{Name: "record", Usage: "record the episode in run `NAME` (created if needed)"},
		),
		Action: func(c *cli.Context) error {
			args, err := trailingFlags(c)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("want one question argument (quote it)")
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			ls, agents, so, err := buildAgents(c, s, c.String("task"), []string{c.String("method")})
			if err != nil {
				return err
			}
			defer ls.Close()
			a := agents[0]
			var rec *store.Store
			var runID int64
			if name := c.String("record"); name != "" {
				run := agent.NewRunConfig(ls, a, so).StoreRun(name, store.KindEval, agent.AdhocTask, agent.AdhocSplit)
				r, _, err := agent.OpenRun(c.Context, s, run)
				if err != nil {
					return err
				}
				rec, runID = s, r.ID
			}
			w := c.App.Writer
			sc, err := tasks.ParseScoring(c.String("scoring"))
			if err != nil {
				return err
			}
			res, err := agent.Answer(c.Context, rec, runID, a, agent.Query{Text: args[0], Gold: c.String("gold"),
				Task: c.String("task"), Score: sc.Scorer(c.String("task")), OnText: func(t string) { fmt.Fprint(w, t) }})
			fmt.Fprintf(w, "\n%s after %d steps in %s; answer: %q", res.Status, len(res.Trajectory.Steps), res.Latency.Round(1e6), res.Trajectory.Answer)
			if c.String("gold") != "" {
				fmt.Fprintf(w, " (EM %.0f, F1 %.2f)", res.Scores.EM, res.Scores.F1)
			}
			fmt.Fprintln(w)
			return err
		},
	}
}
