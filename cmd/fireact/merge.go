package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "merge LoRA adapters into a model and (re)quantize it, for runtimes that cannot load an adapter",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF base model `FILE` (F32, F16, BF16, Q8_0 or Q4_0 weights)", Required: true},
			&cli.StringSliceFlag{Name: "lora", Usage: "LoRA adapter `FILE` (repeatable; FILE:SCALE sets a scale)", Required: true},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "merged GGUF `FILE`", Required: true},
			&cli.StringFlag{Name: "type", Usage: "output type: " + strings.Join(llama.QuantTypes(), ", ") + " (default: the base's)"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads for quantizing (0: all)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("merge: unexpected arguments %v (the model is -m, adapters --lora)", c.Args().Slice())
			}
			var loras []llama.MergeLoRA
			for _, spec := range c.StringSlice("lora") {
				path, scale, err := parseLoraSpec(spec)
				if err != nil {
					return fmt.Errorf("merge: %w", err)
				}
				loras = append(loras, llama.MergeLoRA{Path: path, Scale: scale})
			}
			opts := llama.MergeOptions{Type: c.String("type"), Threads: c.Int("threads")}
			if err := llama.Merge(c.Context, c.String("model"), loras, c.String("out"), opts); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "merge: wrote %s\n", c.String("out"))
			return nil
		},
	}
}
