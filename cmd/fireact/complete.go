package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama"
)

// modelFlags are shared by commands that load a model.
func modelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model `FILE`", Required: true, EnvVars: []string{"FIREACT_MODEL"}},
		&cli.StringSliceFlag{Name: "lora", Usage: "LoRA adapter `FILE` (repeatable; FILE:SCALE sets a scale)"},
		&cli.IntFlag{Name: "ctx", Aliases: []string{"c"}, Usage: "context size in tokens (0: the model's, capped at 4096)"},
		&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads (0: all)"},
		&cli.IntFlag{Name: "gpu-layers", Aliases: []string{"ngl"}, Usage: "layers to offload to a GPU (-1: all)"},
	}
}

// openModel loads the model and adapters named by modelFlags.
func openModel(c *cli.Context) (*llama.Model, []llama.AdapterScale, error) {
	m, err := llama.LoadModel(c.String("model"), llama.ModelOptions{GPULayers: c.Int("gpu-layers")})
	if err != nil {
		return nil, nil, err
	}
	var adapters []llama.AdapterScale
	for _, spec := range c.StringSlice("lora") {
		path, scale, err := parseLoraSpec(spec)
		if err != nil {
			m.Close()
			return nil, nil, err
		}
		a, err := m.LoadAdapter(path)
		if err != nil {
			m.Close()
			return nil, nil, err
		}
		adapters = append(adapters, llama.AdapterScale{Adapter: a, Scale: scale})
	}
	return m, adapters, nil
}

func contextSize(c *cli.Context, m *llama.Model) int {
	if n := c.Int("ctx"); n > 0 {
		return n
	}
	return min(m.Info().NCtxTrain, 4096)
}

func completeCommand() *cli.Command {
	return &cli.Command{
		Name:  "complete",
		Usage: "stream a completion of a prompt",
		Flags: append(modelFlags(),
			&cli.StringFlag{Name: "prompt", Aliases: []string{"p"}, Usage: "prompt `TEXT` (or --file)"},
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the prompt from `FILE`"},
			&cli.IntFlag{Name: "n-predict", Aliases: []string{"n"}, Value: 128, Usage: "tokens to generate (0: until end of text)"},
			&cli.Float64Flag{Name: "temp", Value: 0.8, Usage: "temperature (0: greedy)"},
			&cli.IntFlag{Name: "top-k", Value: 40},
			&cli.Float64Flag{Name: "top-p", Value: 0.95},
			&cli.Float64Flag{Name: "min-p", Value: 0.05},
			&cli.Float64Flag{Name: "repeat-penalty", Value: 1.0},
			&cli.UintFlag{Name: "seed", Value: 42},
			&cli.StringSliceFlag{Name: "stop", Usage: "stop `STRING` (repeatable)"},
			&cli.StringFlag{Name: "grammar", Usage: "GBNF grammar `TEXT`"},
			&cli.StringFlag{Name: "grammar-file", Usage: "GBNF grammar `FILE`"},
			&cli.BoolFlag{Name: "no-echo", Usage: "do not print the prompt before the completion"},
		),
		Action: runComplete,
	}
}

func runComplete(c *cli.Context) error {
	prompt := c.String("prompt")
	if f := c.String("file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("complete: %w", err)
		}
		prompt = string(b)
	}
	if prompt == "" {
		return fmt.Errorf("complete: give a prompt with -p or --file")
	}
	grammar := c.String("grammar")
	if f := c.String("grammar-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("complete: %w", err)
		}
		grammar = string(b)
	}
	m, adapters, err := openModel(c)
	if err != nil {
		return err
	}
	defer m.Close()
	e, err := llama.NewEngine(m, llama.EngineOptions{Context: llama.ContextOptions{
		NCtx: contextSize(c, m), NSeqMax: 1, Threads: c.Int("threads")}})
	if err != nil {
		return err
	}
	defer e.Close()
	w := c.App.Writer
	if !c.Bool("no-echo") {
		fmt.Fprint(w, prompt)
	}
	res, err := e.Generate(c.Context, llama.Request{
		Prompt:    prompt,
		MaxTokens: c.Int("n-predict"),
		Stop:      c.StringSlice("stop"),
		Adapters:  adapters,
		Sampling: llama.SamplingOptions{
			Temperature:   float32(c.Float64("temp")),
			TopK:          c.Int("top-k"),
			TopP:          float32(c.Float64("top-p")),
			MinP:          float32(c.Float64("min-p")),
			RepeatPenalty: float32(c.Float64("repeat-penalty")),
			Seed:          uint32(c.Uint("seed")),
			Grammar:       grammar,
		},
		OnText: func(s string) error {
			_, err := fmt.Fprint(w, s)
			return err
		},
	})
	fmt.Fprintln(w)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "[%d prompt tokens, %d generated, %s, %.1f tok/s]\n", res.PromptTokens, len(res.Tokens),
		res.FinishReason, tokensPerSecond(len(res.Tokens), res.GenTime.Seconds()))
	return nil
}

func tokensPerSecond(n int, sec float64) float64 {
	if sec <= 0 {
		return 0
	}
	return float64(n) / sec
}
