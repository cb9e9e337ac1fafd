package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent/results"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/finetune/dataformat"
	"github.com/fireact/fireact/store"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "import FireAct data into the store",
		Subcommands: []*cli.Command{
			{
				Name:      "fireact-sft",
				Usage:     "import FireAct fine-tuning files (alpaca .json, gpt .jsonl, sharegpt .jsonl) as trajectories and datasets",
				ArgsUsage: "FILE...",
				Flags: []cli.Flag{
					storeDBFlag(),
					&cli.StringFlag{Name: "format", Usage: "alpaca, gpt or sharegpt (default: from the file name)"},
					&cli.StringFlag{Name: "method", Usage: "label every row with this method instead of classifying (react, cot, reflexion)"},
					&cli.StringFlag{Name: "dataset", Usage: "dataset name (one FILE only; default <format>/<file name>)"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return fmt.Errorf("import fireact-sft: want at least one FILE")
					}
					if c.String("dataset") != "" && c.NArg() > 1 {
						return fmt.Errorf("import fireact-sft: --dataset names one dataset; give one FILE")
					}
					opt := dataformat.ImportOptions{Method: c.String("method"), Dataset: c.String("dataset")}
					if f := c.String("format"); f != "" {
						var err error
						if opt.Format, err = dataformat.ParseFormat(f); err != nil {
							return err
						}
					}
					s, err := openStoreDB(c)
					if err != nil {
						return err
					}
					defer s.Close()
					for _, file := range c.Args().Slice() {
						rep, err := dataformat.ImportFile(c.Context, s, file, opt)
						// The bad rows say why, also when no row imported.
						for _, e := range rep.Errors {
							fmt.Fprintln(c.App.ErrWriter, "bad row:", e.Error())
						}
						if err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, rep.String())
					}
					return nil
				},
			},
			{
				Name:      "fireact-results",
				Usage:     "import a FireAct result file (trajs/*.json) as an eval run, re-scored with fireact's metrics",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{
					storeDBFlag(),
					&cli.StringFlag{Name: "task", Required: true, Usage: "task the indices refer to"},
					&cli.StringFlag{Name: "split", Value: "dev", Usage: "split the indices refer to"},
					&cli.StringFlag{Name: "name", Usage: "run name"},
					&cli.StringFlag{Name: "method", Usage: "method label (react, cot, ...)"},
					&cli.StringFlag{Name: "model", Usage: "model label (default: the model in FireAct's file name)"},
					&cli.IntFlag{Name: "asked", Usage: "questions asked; EM and F1 are over them, a missing one counting 0 (default: the range in FireAct's file name, hotpotqa_dev_0_500_...)"},
					dataDirFlag(),
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("import fireact-results: want exactly one FILE")
					}
					// Questions and gold answers come from the task data when it is
					// there; otherwise from the file itself.
					var task tasks.Task
					if dir := tasks.DataDir(c.String("data-dir")); dir != "" {
						t, err := tasks.Open(dir, c.String("task"), c.String("split"))
						if err != nil {
							return err
						}
						task = t
					}
					s, err := openStoreDB(c)
					if err != nil {
						return err
					}
					defer s.Close()
					rep, err := results.ImportFile(c.Context, s, c.Args().First(), task, results.Options{
						Task: c.String("task"), Split: c.String("split"), Name: c.String("name"),
						Method: c.String("method"), Model: c.String("model"), Asked: c.Int("asked"),
					})
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "run %d: %d episodes, answered %d of %d; EM %.4f F1 %.4f (file: EM %.4f F1 %.4f; %d EM disagreements)\n",
						rep.RunID, rep.Episodes, rep.Answered, rep.Asked, rep.EM, rep.F1, rep.FireActEM, rep.FireActF1, rep.Disagreements)
					return nil
				},
			},
		},
	}
}

// storeDBFlag is the --db flag of the commands that use the store.
func storeDBFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "db",
		EnvVars: []string{store.EnvPath},
		Value:   store.DefaultPath,
		Usage:   "SQLite database file",
	}
}

// openStoreDB opens the store named by --db (or FIREACT_DB).
func openStoreDB(c *cli.Context) (*store.Store, error) {
	return store.Open(c.Context, store.PathFromEnv(c.String("db")))
}
