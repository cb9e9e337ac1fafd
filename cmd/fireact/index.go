package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
)

func indexCommand() *cli.Command {
	return &cli.Command{
		Name:      "index",
		Usage:     "add {title, text} documents (JSONL or a JSON array) to a local search corpus",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "corpus", Value: "wiki", Usage: "corpus `NAME`"},
			storeDBFlag(),
		},
		Action: func(c *cli.Context) error {
			args, err := trailingFlags(c)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return fmt.Errorf("want one corpus file")
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := agent.IndexFile(c.Context, s, c.String("corpus"), args[0])
			if err != nil {
				return err
			}
			v, err := s.CorpusVersion(c.Context, c.String("corpus"))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "indexed %d documents into corpus %q (%d in all, cached searches under %s)\n", n, c.String("corpus"), v.Docs, agent.LocalCacheBackend(v))
			return nil
		},
	}
}
