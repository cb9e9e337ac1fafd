package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/atomicfile"

	"github.com/fireact/fireact/finetune/dataformat"
	"github.com/fireact/fireact/store"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write a dataset as FireAct alpaca JSON, OpenAI chat JSONL or ShareGPT JSONL",
		Flags: []cli.Flag{
			storeDBFlag(),
			&cli.StringFlag{Name: "dataset", Required: true, Usage: "dataset id or name"},
			&cli.StringFlag{Name: "format", Value: string(dataformat.Alpaca), Usage: "alpaca, gpt or sharegpt"},
			&cli.StringFlag{Name: "out", Value: "-", Usage: "output file (- for standard output)"},
		},
		Action: func(c *cli.Context) error {
			f, err := dataformat.ParseFormat(c.String("format"))
			if err != nil {
				return err
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			var d store.Dataset
			if id, perr := strconv.ParseInt(c.String("dataset"), 10, 64); perr == nil {
				d, err = s.Dataset(c.Context, id)
			} else {
				d, err = s.DatasetByName(c.Context, c.String("dataset"))
			}
			if err != nil {
				return err
			}
			var w io.Writer = c.App.Writer
			var file *atomicfile.File
			if out := c.String("out"); out != "-" && out != "" {
				// A training step trusts this file: it appears whole or not at all.
				if file, err = atomicfile.Create(out); err != nil {
					return fmt.Errorf("export: %w", err)
				}
				defer file.Abort()
				w = file
			}
			n, err := dataformat.Export(c.Context, s, d.ID, f, w)
			if err != nil {
				return err
			}
			if file != nil {
				if err := file.Commit(); err != nil {
					return fmt.Errorf("export: %w", err)
				}
			}
			fmt.Fprintf(c.App.ErrWriter, "exported %d examples of dataset %d %q as %s\n", n, d.ID, d.Name, f)
			return nil
		},
	}
}
