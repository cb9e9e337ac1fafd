package main

import (
	"encoding/json"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/demo"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run FireAct in miniature on the built-in world, offline: teacher, fine-tuned students, evaluation, report",
		Description: `Generates a seeded mini-encyclopedia and HotpotQA-style questions, has a scripted
oracle teacher answer the train questions with ReAct, CoT and Reflexion through
the real search tool, pretrains a tiny student made in code, LoRA-tunes it on the
ReAct trajectories and on the multi-method mix, and evaluates the prompted and
fine-tuned students (clean and noisy search) and the teacher on dev. Finished
stages are cached under --dir by a hash of the configuration.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: "fireact-demo", Usage: "cache and output `DIR`"},
			&cli.BoolFlag{Name: "small", Usage: "a smaller world and shorter training (about a minute)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "world seed"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			&cli.StringFlag{Name: "teacher-url", Usage: "use the OpenAI-compatible model at `URL` (e.g. http://127.0.0.1:8080/v1) as the teacher instead of the scripted oracle; key from OPENAI_API_KEY"},
			&cli.StringFlag{Name: "teacher-model", Value: "gpt-4", Usage: "model `NAME` of --teacher-url"},
		},
		Action: func(c *cli.Context) error {
			cfg := demo.DefaultConfig()
			if c.Bool("small") {
				cfg = demo.SmallConfig()
			}
			cfg.World.Seed = c.Uint64("seed")
			cfg.Threads = c.Int("threads")
			if u := c.String("teacher-url"); u != "" {
				cfg.TeacherURL, cfg.TeacherModel = u, c.String("teacher-model")
			}
			res, err := demo.Run(c.Context, c.String("dir"), cfg, c.App.ErrWriter)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			res.Print(c.App.Writer)
			return nil
		},
	}
}
