package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/llama"
)

func finetuneCommand() *cli.Command {
	return &cli.Command{
		Name:  "finetune",
		Usage: "LoRA (or full) fine-tune a GGUF model on trajectories from the store, a FireAct data file or plain text",
		Description: "Defaults follow FireAct (rank 8, alpha 16, q,v, lr 3e-4, alpaca template) with loss on the\n" +
			"agent's Thought/Action text only (--train-on-inputs for FireAct's exact recipe). Checkpoints go to\n" +
			"OUT.ckpt; running the same command again resumes after a kill or Ctrl-C.",
		Flags: []cli.Flag{
			storeDBFlag(),
			&cli.StringFlag{Name: "base", Required: true, Usage: "base GGUF model `FILE` (never modified)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output adapter (or model, with --full) `FILE`"},
			&cli.StringSliceFlag{Name: "from-run", Usage: "train on the episodes of these runs (names or ids; repeatable or comma-separated)"},
			&cli.StringFlag{Name: "dataset", Usage: "train on a store dataset (name or id)"},
			&cli.StringFlag{Name: "data", Usage: "train on a FireAct alpaca/gpt/sharegpt `FILE` (imported into the store first)"},
			&cli.StringFlag{Name: "text", Usage: "train on plain text `FILE` (every token scored)"},
			&cli.Float64Flag{Name: "min-reward", Usage: "keep episodes with at least this reward (default 1 with --from-run, all otherwise)"},
			&cli.BoolFlag{Name: "all-episodes", Usage: "with --from-run, keep unsuccessful episodes too"},
			&cli.StringFlag{Name: "mix", Usage: "method mixing ratios, e.g. react=1,cot=0.5,reflexion=0.5"},
			&cli.StringFlag{Name: "task-mix", Usage: "task mixing ratios, e.g. hotpotqa=1,strategyqa=0.5"},
			&cli.StringFlag{Name: "dataset-name", Usage: "name of the dataset recorded for a selection"},
			&cli.StringFlag{Name: "template", Value: "alpaca", Usage: "alpaca (FireAct's) or chat (the model's chat template)"},
			&cli.StringFlag{Name: "chat-template", Usage: "chat template text or llama.cpp built-in name (default: the model's)"},
			&cli.BoolFlag{Name: "train-on-inputs", Usage: "score every token, not only the agent's (FireAct's exact recipe)"},
			&cli.IntFlag{Name: "rank", Value: finetune.DefaultRank, Usage: "LoRA rank"},
			&cli.Float64Flag{Name: "alpha", Usage: "LoRA alpha (default 2*rank)"},
			&cli.StringFlag{Name: "targets", Value: "q,v", Usage: "LoRA targets: q,k,v,o,gate,up,down,output, all or all+output"},
			&cli.Float64Flag{Name: "lr", Value: finetune.DefaultLR, Usage: "peak learning rate"},
			&cli.IntFlag{Name: "epochs", Usage: fmt.Sprintf("passes over the data (default %d unless --max-steps)", finetune.DefaultEpochs)},
			&cli.IntFlag{Name: "max-steps", Usage: "stop after this many optimizer steps"},
			&cli.IntFlag{Name: "max-tokens", Value: finetune.DefaultMaxTokens, Usage: "tokens per packed step (no gradient accumulation: a step is one packed batch)"},
			&cli.IntFlag{Name: "cutoff", Value: finetune.DefaultCutoff, Usage: "tokens per example; longer ones are truncated and counted"},
			&cli.Float64Flag{Name: "warmup", Value: finetune.DefaultWarmup, Usage: "warm-up: fraction of the steps (< 1) or steps"},
			&cli.StringFlag{Name: "schedule", Value: "linear", Usage: "decay after warm-up: linear, cosine or constant"},
			&cli.Float64Flag{Name: "val", Value: finetune.DefaultVal, Usage: "validation fraction (< 1) or count; 0 for none"},
			&cli.IntFlag{Name: "eval-every", Value: finetune.DefaultEvalEvery, Usage: "steps between validations"},
			&cli.IntFlag{Name: "save-every", Value: finetune.DefaultSaveEvery, Usage: "steps between checkpoints"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of sampling, split, shuffle and LoRA init"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads (0: all)"},
			&cli.BoolFlag{Name: "full", Usage: "train every weight of a small F32 model and write the whole model"},
			&cli.BoolFlag{Name: "f32-head", Usage: "keep an F32 copy of the output matrix (faster steps on quantized models)"},
			&cli.BoolFlag{Name: "f32-base", Usage: "keep F32 copies of every frozen matrix (small quantized models)"},
			&cli.StringFlag{Name: "optimizer", Value: "adamw", Usage: "adamw or sgd"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "AdamW weight decay"},
		},
		Action: func(c *cli.Context) error {
			cfg := finetune.Config{
				Base: c.String("base"), Out: c.String("out"), Dataset: c.String("dataset"),
				DataFile: c.String("data"), TextFile: c.String("text"), DatasetName: c.String("dataset-name"),
				ChatTemplate: c.String("chat-template"), TrainOnInputs: c.Bool("train-on-inputs"),
				Rank: c.Int("rank"), Alpha: float32(c.Float64("alpha")), LR: c.Float64("lr"),
				Epochs: c.Int("epochs"), MaxSteps: c.Int("max-steps"), MaxTokens: c.Int("max-tokens"),
				Cutoff: c.Int("cutoff"), Warmup: c.Float64("warmup"), Val: c.Float64("val"),
				EvalEvery: c.Int("eval-every"), SaveEvery: c.Int("save-every"), Seed: c.Uint64("seed"),
				Threads: c.Int("threads"), Full: c.Bool("full"), F32Head: c.Bool("f32-head"), F32Base: c.Bool("f32-base"),
				Optimizer: c.String("optimizer"), WeightDecay: float32(c.Float64("weight-decay")),
				Progress: c.App.ErrWriter,
			}
			for _, r := range c.StringSlice("from-run") {
				for _, p := range strings.Split(r, ",") {
					if p = strings.TrimSpace(p); p != "" {
						cfg.Runs = append(cfg.Runs, p)
					}
				}
			}
			// 0 means "the default" inside finetune; the flags' 0 means "none".
			if cfg.Val == 0 {
				cfg.Val = -1
			}
			if cfg.Warmup == 0 {
				cfg.Warmup = -1
			}
			var err error
			if cfg.Template, err = finetune.ParseTemplate(c.String("template")); err != nil {
				return err
			}
			if cfg.Schedule, err = finetune.ParseSchedule(c.String("schedule")); err != nil {
				return err
			}
			if cfg.Targets, err = llama.ParseTargets(c.String("targets")); err != nil {
				return err
			}
			if cfg.Mix, err = finetune.ParseMix(c.String("mix")); err != nil {
				return err
			}
			if cfg.TaskMix, err = finetune.ParseMix(c.String("task-mix")); err != nil {
				return err
			}
			switch {
			case c.IsSet("min-reward"):
				v := c.Float64("min-reward")
				cfg.MinReward = &v
			case len(cfg.Runs) > 0 && !c.Bool("all-episodes"):
				// FireAct trains on the trajectories that reached the right answer.
				one := 1.0
				cfg.MinReward = &one
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			res, err := finetune.Run(c.Context, s, cfg)
			if err != nil {
				if errors.Is(err, c.Context.Err()) && c.Context.Err() != nil {
					fmt.Fprintln(c.App.ErrWriter, "interrupted: checkpoint saved in", finetune.CheckpointDir(cfg.Out)+"; run the same command to resume")
				}
				return err
			}
			w := c.App.Writer
			if res.AlreadyDone {
				fmt.Fprintln(w, "already finished (remove", finetune.CheckpointDir(cfg.Out), "to train again)")
			}
			val := "-"
			if res.ValLoss > 0 {
				val = fmt.Sprintf("%.4f", res.ValLoss)
			}
			fmt.Fprintf(w, "steps %d, final loss %.4f, val loss %s, %d tokens, %s", res.Steps, res.Loss, val, res.Tokens, res.Elapsed.Round(time.Second))
			if res.TokensPerSec > 0 {
				fmt.Fprintf(w, ", %.0f tok/s", res.TokensPerSec)
			}
			if res.Resumed > 0 {
				fmt.Fprintf(w, " (resumed at step %d)", res.Resumed)
			}
			fmt.Fprintln(w)
			if !res.AlreadyDone {
				fmt.Fprintf(w, "examples %d train, %d validation, %d truncated to %d tokens, %d with nothing to score skipped\n",
					res.Examples, res.ValExamples, res.Truncated, res.Cutoff, res.Skipped)
			}
			fmt.Fprintf(w, "wrote %s (sha256 %s); training run %d, run %d, dataset %d\n",
				res.Out, res.OutHash, res.TrainingRunID, res.RunID, res.DatasetID)
			return nil
		},
	}
}
