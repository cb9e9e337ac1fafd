package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama"
)

func perplexityCommand() *cli.Command {
	return &cli.Command{
		Name:      "perplexity",
		Usage:     "print the perplexity of a model (optionally with LoRA adapters) on a text file",
		ArgsUsage: "FILE",
		Flags:     modelFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("perplexity: want exactly one text FILE argument")
			}
			text, err := os.ReadFile(c.Args().First())
			if err != nil {
				return fmt.Errorf("perplexity: %w", err)
			}
			m, adapters, err := openModel(c)
			if err != nil {
				return err
			}
			defer m.Close()
			ctx, err := m.NewContext(llama.ContextOptions{NCtx: contextSize(c, m), Threads: c.Int("threads")})
			if err != nil {
				return err
			}
			defer ctx.Close()
			for _, a := range adapters {
				if err := ctx.SetAdapter(a.Adapter, a.Scale); err != nil {
					return err
				}
			}
			r, err := ctx.Perplexity(string(text))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "perplexity: %.4f (mean NLL %.4f nats over %d tokens, %d window(s))\n",
				r.Perplexity, r.MeanNLL, r.Tokens, r.Windows)
			return nil
		},
	}
}
