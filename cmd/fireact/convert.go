package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
)

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:  "convert",
		Usage: "convert a PEFT LoRA adapter to a llama.cpp LoRA GGUF (default) or back (--to peft)",
		Description: "fireact convert --base BASE.gguf --out ADAPTER.gguf PEFT_DIR\n" +
			"fireact convert --to peft --base BASE.gguf --out PEFT_DIR ADAPTER.gguf\n\n" +
			"The base GGUF gives the architecture, the head counts for the Q/K row order of llama models\n" +
			"and the shapes every LoRA tensor is checked against.",
		ArgsUsage: "PEFT_DIR | ADAPTER.gguf",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Value: "gguf", Usage: "output format: gguf or peft"},
			&cli.StringFlag{Name: "base", Usage: "GGUF base model `FILE` the adapter is for", Required: true},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output `PATH` (a .gguf file, or a directory for --to peft)", Required: true},
			&cli.StringFlag{Name: "base-model-id", Usage: "base_model_name_or_path written for --to peft (default: the base's general.name)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("convert: want exactly one PEFT_DIR or ADAPTER.gguf argument")
			}
			base, err := gguf.Read(c.String("base"))
			if err != nil {
				return fmt.Errorf("convert: %w", err)
			}
			var conv *hf.Conversion
			switch c.String("to") {
			case "gguf":
				conv, err = hf.PEFTToGGUF(c.Context, c.Args().First(), base, c.String("out"))
			case "peft":
				conv, err = hf.GGUFToPEFT(c.Context, c.Args().First(), base, c.String("out"), hf.PEFTOptions{BaseModel: c.String("base-model-id")})
			default:
				return fmt.Errorf("convert: --to %q: want gguf or peft", c.String("to"))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "convert: wrote %s: %s LoRA, rank %d, alpha %g, %d targets (%d with Q/K rows reordered)\n",
				c.String("out"), conv.Arch, conv.Rank, conv.Alpha, len(conv.Targets), len(conv.Permuted))
			return nil
		},
	}
}
