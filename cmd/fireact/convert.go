package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
)

func convertCommand() *cli.Command {
	return &cli.Command{
		Name:  "convert",
		Usage: "convert a Hugging Face checkpoint to GGUF, a PEFT LoRA adapter to a llama.cpp LoRA GGUF (--base), or back (--to peft)",
		Description: "fireact convert --out MODEL.gguf [--type f16] HF_DIR\n" +
			"fireact convert --base BASE.gguf --out ADAPTER.gguf PEFT_DIR\n" +
			"fireact convert --to peft --base BASE.gguf --out PEFT_DIR ADAPTER.gguf\n\n" +
			"A checkpoint is config.json, model.safetensors (or shards with model.safetensors.index.json),\n" +
			"tokenizer.json and tokenizer_config.json; supported: " + strings.Join(hf.SupportedCheckpointArchs(), ", ") + ".\n" +
			"For adapters the base GGUF gives the architecture, the head counts for the Q/K row order of\n" +
			"llama models and the shapes every LoRA tensor is checked against.",
		ArgsUsage: "HF_DIR | PEFT_DIR | ADAPTER.gguf",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "to", Value: "gguf", Usage: "output format: gguf or peft"},
			&cli.StringFlag{Name: "base", Usage: "GGUF base model `FILE` the adapter is for (adapters only)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output `PATH` (a .gguf file, or a directory for --to peft)", Required: true},
			&cli.StringFlag{Name: "type", Usage: "checkpoint output type: f32, f16 (default) or a quantized type (" + strings.Join(llama.QuantTypes(), ", ") + ")"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads for quantizing a checkpoint (0: all)"},
			&cli.StringFlag{Name: "base-model-id", Usage: "base_model_name_or_path written for --to peft (default: the base's general.name)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("convert: want exactly one HF_DIR, PEFT_DIR or ADAPTER.gguf argument")
			}
			if c.String("to") == "gguf" && c.String("base") == "" {
				return convertCheckpoint(c)
			}
			if c.IsSet("type") {
				return fmt.Errorf("convert: --type is for checkpoints; an adapter keeps its tensor types")
			}
			if c.String("base") == "" {
				return fmt.Errorf("convert: --to %s needs --base", c.String("to"))
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

// convertCheckpoint is `fireact convert --out MODEL.gguf [--type T] HF_DIR`.
func convertCheckpoint(c *cli.Context) error {
	dir := c.Args().First()
	if _, err := os.Stat(filepath.Join(dir, hf.PEFTConfigFile)); err == nil {
		return fmt.Errorf("convert: %s is a PEFT adapter (it has %s): give the model it is for with --base", dir, hf.PEFTConfigFile)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("convert: %w", err)
	}
	typ := strings.ToLower(c.String("type"))
	if typ != "" && !slices.Contains(llama.QuantTypes(), typ) {
		return fmt.Errorf("convert: --type %q: want one of %s", c.String("type"), strings.Join(llama.QuantTypes(), ", "))
	}
	threads := c.Int("threads")
	opts := hf.CheckpointOptions{
		Type: typ,
		Quantize: func(ctx context.Context, in, out, typ string) error {
			return llama.Quantize(in, out, typ, threads)
		},
	}
	conv, err := hf.ConvertCheckpoint(c.Context, dir, c.String("out"), opts)
	if err != nil {
		return err
	}
	var notes []string
	if n := len(conv.Permuted); n > 0 {
		notes = append(notes, fmt.Sprintf("%d with Q/K rows reordered", n))
	}
	if conv.RopeFreqs {
		notes = append(notes, "rope_freqs from llama3 scaling")
	}
	if conv.TiedOutput {
		notes = append(notes, "output tied to the embedding")
	}
	extra := ""
	if len(notes) > 0 {
		extra = " (" + strings.Join(notes, ", ") + ")"
	}
	fmt.Fprintf(c.App.Writer, "convert: wrote %s: %s as %s %s, %d tensors, %d parameters, %d tokens%s\n",
		c.String("out"), conv.Architecture, conv.Arch, conv.Type, conv.Tensors, conv.Params, conv.VocabSize, extra)
	return nil
}
