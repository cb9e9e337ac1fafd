package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/atomicfile"

	"github.com/fireact/fireact/store/report"
)

func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "compare runs: tables of EM/F1/turns/tokens/cost, a per-question diff, and an HTML page with plots",
		ArgsUsage: "[RUN...]",
		Description: `Compares the given runs (ids or names; default: every run) side by side, by
method and by task, diffs two runs question by question (--diff, or the two
runs when exactly two are given), and shows the loss curves of train runs.
Prints aligned tables, or JSON with --json; --html writes one self-contained
page with SVG plots that opens without a network.`,
		Flags: []cli.Flag{
			storeDBFlag(),
			&cli.StringFlag{Name: "diff", Usage: "compare runs `A,B` question by question"},
			&cli.IntFlag{Name: "diff-rows", Value: 50, Usage: "differing questions to list (0: all)"},
			&cli.StringFlag{Name: "html", Usage: "write the HTML report to `FILE`"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of tables"},
		},
		Action: func(c *cli.Context) error {
			opts := report.Options{Runs: c.Args().Slice(), MaxDiffRows: c.Int("diff-rows")}
			if d := c.String("diff"); d != "" {
				a, b, ok := strings.Cut(d, ",")
				if !ok || a == "" || b == "" {
					return fmt.Errorf("report: --diff wants two runs as A,B, got %q", d)
				}
				opts.DiffA, opts.DiffB = a, b
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			rep, err := report.Build(c.Context, s, opts)
			if err != nil {
				return err
			}
			if path := c.String("html"); path != "" {
				f, err := atomicfile.Create(path)
				if err != nil {
					return fmt.Errorf("report: %w", err)
				}
				defer f.Abort()
				if err := report.HTML(f, rep); err != nil {
					return err
				}
				if err := f.Commit(); err != nil {
					return fmt.Errorf("report: %w", err)
				}
				fmt.Fprintf(c.App.ErrWriter, "wrote %s\n", path)
			}
			if c.Bool("json") {
				return report.JSON(c.App.Writer, rep)
			}
			return report.Text(c.App.Writer, rep)
		},
	}
}
