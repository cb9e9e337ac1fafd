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
		Description: "Settings left unset come from --recipe: agent (default: loss on the agent's Thought/Action\n" +
			"text only, cutoff 1024, a step per packed batch) or fireact (FireAct's run: 128 examples per step by\n" +
			"gradient accumulation, 30 epochs, cutoff 512, 100 warm-up steps, LoRA dropout 0.05, loss on the whole\n" +
			"text, 1% validation, the best adapter by validation loss). Checkpoints go to OUT.ckpt; running the\n" +
			"same command again resumes after a kill or Ctrl-C.",
		Flags: []cli.Flag{
			storeDBFlag(),
			&cli.StringFlag{Name: "recipe", Value: "agent", Usage: "defaults of every unset setting: agent (ours) or fireact (FireAct's run)"},
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
			&cli.BoolFlag{Name: "train-on-inputs", Usage: "score every token, not only the agent's (on in --recipe fireact)"},
			&cli.IntFlag{Name: "rank", Usage: fmt.Sprintf("LoRA rank (default %d)", finetune.DefaultRank)},
			&cli.Float64Flag{Name: "lora-dropout", Usage: "dropout on the adapters' input while training (agent 0, fireact 0.05)"},
			&cli.Float64Flag{Name: "alpha", Usage: "LoRA alpha (default 2*rank)"},
			&cli.StringFlag{Name: "targets", Usage: "LoRA targets: q,k,v,o,gate,up,down,output, all or all+output (default q,v)"},
			&cli.Float64Flag{Name: "lr", Usage: fmt.Sprintf("peak learning rate (default %g)", finetune.DefaultLR)},
			&cli.IntFlag{Name: "epochs", Usage: fmt.Sprintf("passes over the data (agent %d, fireact 30; unused with only --max-steps)", finetune.DefaultEpochs)},
			&cli.IntFlag{Name: "max-steps", Usage: "stop after this many optimizer steps"},
			&cli.IntFlag{Name: "batch-examples", Usage: "examples per optimizer step, gradients accumulated over micro-batches of --max-tokens (agent 0: a step is one micro-batch; fireact 128)"},
			&cli.IntFlag{Name: "max-tokens", Usage: fmt.Sprintf("tokens per packed micro-batch (agent %d, fireact 8192)", finetune.DefaultMaxTokens)},
			&cli.IntFlag{Name: "cutoff", Usage: fmt.Sprintf("tokens per example; longer ones are truncated and counted (agent %d, fireact 512)", finetune.DefaultCutoff)},
			&cli.Float64Flag{Name: "warmup", Usage: fmt.Sprintf("warm-up: fraction of the steps (< 1) or steps; 0 for none (agent %g, fireact 100)", finetune.DefaultWarmup)},
			&cli.StringFlag{Name: "schedule", Usage: "decay after warm-up: linear (default), cosine or constant"},
			&cli.Float64Flag{Name: "val", Usage: fmt.Sprintf("validation fraction (< 1) or count; 0 for none (agent %g, fireact 0.01)", finetune.DefaultVal)},
			&cli.IntFlag{Name: "eval-every", Usage: fmt.Sprintf("steps between validations (agent %d, fireact 200)", finetune.DefaultEvalEvery)},
			&cli.IntFlag{Name: "save-every", Usage: fmt.Sprintf("steps between checkpoints (agent %d, fireact 200)", finetune.DefaultSaveEvery)},
			&cli.BoolFlag{Name: "keep-best", Usage: "write the adapter of the lowest validation loss, not the last (on in --recipe fireact)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of sampling, split, shuffle and LoRA init"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads (0: all)"},
			&cli.BoolFlag{Name: "full", Usage: "train every weight of a small F32 model and write the whole model"},
			&cli.BoolFlag{Name: "f32-head", Usage: "keep an F32 copy of the output matrix (faster steps on quantized models)"},
			&cli.BoolFlag{Name: "f32-base", Usage: "keep F32 copies of every frozen matrix (small quantized models)"},
			&cli.StringFlag{Name: "optimizer", Value: "adamw", Usage: "adamw or sgd"},
			&cli.Float64Flag{Name: "weight-decay", Usage: "AdamW weight decay"},
			&cli.StringFlag{Name: "backward", Value: string(llama.BackwardTransient), Usage: "gradient through the frozen weights: transient (least memory, exact), transposed (F32 copies kept: 4 bytes a weight more), transposed-q8 (copies in Q8_0, approximate) or outprod (ggml's own, slow)"},
			&cli.StringFlag{Name: "gradient-checkpointing", Value: string(finetune.CheckpointingAuto), Usage: "recompute each block's activations in the backward instead of keeping them: auto (only when the estimated peak would not fit in memory, and then only as many blocks as must be: the top blocks that fit keep theirs), on (every block but the top one: least memory, up to one more forward a step) or off; the result is the same"},
			&cli.BoolFlag{Name: "ignore-memory-check", Usage: "train even when the estimated peak memory exceeds what the machine has"},
			&cli.IntFlag{Name: "serve-ctx", Usage: "context per sequence the adapter will be served at; LongRoPE models (Phi-3.5/4-mini) train on the RoPE factors llama.cpp picks for it (default 256: the short table)"},
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
				WeightDecay:   float32(c.Float64("weight-decay")),
				BatchExamples: c.Int("batch-examples"), KeepBest: c.Bool("keep-best"), LoRADropout: c.Float64("lora-dropout"),
				Progress: c.App.ErrWriter,
			}
			for _, r := range c.StringSlice("from-run") {
				for _, p := range strings.Split(r, ",") {
					if p = strings.TrimSpace(p); p != "" {
						cfg.Runs = append(cfg.Runs, p)
					}
				}
			}
			// 0 means "the recipe's" inside finetune; a flag set to 0 means "none".
			for _, f := range []struct {
				name string
				v    *float64
			}{{"val", &cfg.Val}, {"warmup", &cfg.Warmup}, {"lora-dropout", &cfg.LoRADropout}} {
				if c.IsSet(f.name) && *f.v == 0 {
					*f.v = -1
				}
			}
			var err error
			if cfg.Recipe, err = finetune.ParseRecipe(c.String("recipe")); err != nil {
				return err
			}
			if cfg.Template, err = finetune.ParseTemplate(c.String("template")); err != nil {
				return err
			}
			if cfg.Optimizer, err = llama.ParseOptimizer(c.String("optimizer")); err != nil {
				return err
			}
			if cfg.Backward, err = llama.ParseBackward(c.String("backward")); err != nil {
				return err
			}
			if cfg.GradientCheckpointing, err = finetune.ParseCheckpointing(c.String("gradient-checkpointing")); err != nil {
				return err
			}
			cfg.IgnoreMemoryCheck = c.Bool("ignore-memory-check")
			cfg.ServeContext = c.Int("serve-ctx")
			if c.IsSet("schedule") {
				if cfg.Schedule, err = finetune.ParseSchedule(c.String("schedule")); err != nil {
					return err
				}
			}
			if c.IsSet("targets") {
				if cfg.Targets, err = llama.ParseTargets(c.String("targets")); err != nil {
					return err
				}
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
			if res.BestStep > 0 {
				fmt.Fprintf(w, "kept the adapter of step %d (val loss %.4f)\n", res.BestStep, res.BestValLoss)
			}
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
