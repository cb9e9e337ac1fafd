package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent/tasks"
)

func questionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "questions",
		Usage: "list a task split's questions as index<TAB>question, in natural, FireAct or random order",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "task", Required: true, Usage: "hotpotqa, strategyqa, bamboogle or mmlu"},
			&cli.StringFlag{Name: "split", Value: "dev", Usage: "split (hotpotqa: dev; strategyqa: dev, test, train_filtered; bamboogle: test; mmlu: dev, val, test)"},
			&cli.StringFlag{Name: "order", Value: tasks.OrderNatural, Usage: "natural, fireact (Python random.Random(233).shuffle) or random"},
			&cli.Int64Flag{Name: "seed", Usage: "seed for --order random (Python random.Random(seed).shuffle)"},
			&cli.IntFlag{Name: "offset", Usage: "skip this many questions of the order"},
			&cli.IntFlag{Name: "limit", Usage: "print at most this many questions (0: all)"},
			dataDirFlag(),
		},
		Action: func(c *cli.Context) error {
			dir := tasks.DataDir(c.String("data-dir"))
			task, err := tasks.Open(dir, c.String("task"), c.String("split"))
			if err != nil {
				return err
			}
			idx, err := tasks.Select(task, c.String("order"), c.Int64("seed"), c.Int("offset"), c.Int("limit"))
			if err != nil {
				return err
			}
			// One question per line: MMLU questions span lines (their options),
			// so newlines and tabs are escaped.
			esc := strings.NewReplacer("\\", `\\`, "\n", `\n`, "\t", `\t`)
			for _, i := range idx {
				fmt.Fprintf(c.App.Writer, "%d\t%s\n", i, esc.Replace(task.Question(i).Text))
			}
			return nil
		},
	}
}

// dataDirFlag is the FireAct data directory flag shared by the data commands.
func dataDirFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "data-dir",
		EnvVars: []string{tasks.EnvDataDir},
		Usage:   "FireAct data directory (default " + tasks.DefaultDataDir + " if it exists)",
	}
}
