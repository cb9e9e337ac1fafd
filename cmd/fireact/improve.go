package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/agent/world"
	"github.com/fireact/fireact/demo"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/improve"
	"github.com/fireact/fireact/llama"
)

func improveCommand() *cli.Command {
	return roundsCommand("improve", improve.LearnerRejection,
		"rejection-sampling rounds (STaR / ReST-EM): the student samples k trajectories per train question, the correct ones are mixed with the teacher data and the adapter is retrained; each round is evaluated on dev",
		improveDescription)
}

func rlCommand() *cli.Command {
	return roundsCommand("rl", improve.LearnerGRPO,
		"GRPO on the LoRA adapter: the student samples k trajectories per train question through the agent loop and tools, and every sample trains, weighted by its reward normalised within its group; each round is evaluated on dev",
		`fireact improve with --learner grpo. Each round: the current student samples --k
trajectories per train question (runs NAME/rN/sample-J); each sample's reward
(EM, or F1 with --reward f1, minus --format-penalty for an episode that did not
finish with an answer) is normalised within its question's group; the adapter
takes --epochs passes of policy-gradient steps over the samples — the agent's
tokens weighted by the advantage, the question and observations masked, PPO's
ratio clipped at --clip, an optional KL penalty --kl against the round-0 student —
and is evaluated on dev. The loss curve and each step's reward, KL to the
reference and clipped fraction are recorded with a training run (fireact report
plots them); every step is checkpointed beside the round's adapter, and running
the same command again resumes after the last finished step.`)
}

const improveDescription = `Each round: the current student (--base with the last adapter; round 0 is --lora,
evaluated only) answers every train question --k times at --temperature through the
agent loop and search tool (runs NAME/rN/sample-J); samples with EM 1 (or F1 at
least --min-f1) are kept, one per distinct trajectory; they are mixed with the
teacher's episodes by --mix (dataset NAME/rN/train) and the adapter is retrained
from the previous one (DIR/round-N.lora.gguf); the new adapter is evaluated on dev
(run NAME/rN/dev). Rounds, samples, kept counts and dev EM are recorded in the
store (fireact report shows them). Running the same command again resumes an
interrupted round; a larger --rounds continues a finished job.`

// roundsCommand is improve or rl: the same rounds with learner as default.
func roundsCommand(name, learner, usage, description string) *cli.Command {
	return &cli.Command{
		Name:        name,
		Usage:       usage,
		Description: description,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "learner", Value: learner, Usage: "how a round learns: rejection (keep the correct samples, fine-tune) or grpo (policy gradient on every sample)"},
			&cli.Float64Flag{Name: "clip", Value: 0.2, Usage: "grpo: PPO's ratio clip ε"},
			&cli.Float64Flag{Name: "kl", Usage: "grpo: weight of the KL penalty against the round-0 student (0: none)"},
			&cli.StringFlag{Name: "reward", Value: "em", Usage: "grpo: em or f1"},
			&cli.Float64Flag{Name: "format-penalty", Usage: "grpo: subtracted from the reward of an episode that did not finish with an answer"},
			storeDBFlag(),
			dataDirFlag(),
			&cli.StringFlag{Name: "run", Required: true, Usage: "job `NAME` (its runs, datasets and rounds are named after it)"},
			&cli.StringFlag{Name: "dir", Usage: "adapter output `DIR` (default improve-NAME)"},
			&cli.StringFlag{Name: "base", Aliases: []string{"m"}, Required: true, Usage: "the student's base GGUF `FILE`"},
			&cli.StringFlag{Name: "lora", Usage: "the student's starting adapter `FILE` (the SFT student; none: round 1 trains a fresh one)"},
			&cli.StringSliceFlag{Name: "teacher", Usage: "teacher runs (names or ids; repeatable or comma-separated): their successful episodes are the teacher data"},
			&cli.StringFlag{Name: "teacher-dataset", Usage: "a store dataset (name or id) as the teacher data"},
			&cli.StringFlag{Name: "task", Value: tasks.HotpotQA, Usage: "hotpotqa, strategyqa, bamboogle, mmlu or world (the demo world)"},
			&cli.StringFlag{Name: "train-split", Value: "train"},
			&cli.StringFlag{Name: "dev-split", Value: "dev"},
			&cli.StringFlag{Name: "order", Value: tasks.OrderFireAct, Usage: "natural, fireact or random (--seed)"},
			&cli.IntFlag{Name: "train-limit", Usage: "train questions sampled (0: all)"},
			&cli.IntFlag{Name: "dev-limit", Usage: "dev questions evaluated (0: all)"},
			&cli.Uint64Flag{Name: "world-seed", Value: 1, Usage: "--task world: the demo world's seed"},
			&cli.BoolFlag{Name: "small", Usage: "--task world: the small demo world (fireact demo --small)"},
			&cli.IntFlag{Name: "rounds", Value: improve.DefaultRounds, Usage: "rounds after round 0"},
			&cli.IntFlag{Name: "k", Value: improve.DefaultK, Usage: "samples per train question"},
			&cli.Float64Flag{Name: "temperature", Aliases: []string{"temp"}, Value: improve.DefaultTemperature, Usage: "sampling temperature (> 0)"},
			&cli.Float64Flag{Name: "top-p", Value: 1},
			&cli.Float64Flag{Name: "min-f1", Usage: "keep samples with F1 at least this (0: keep those with EM 1)"},
			&cli.StringFlag{Name: "mix", Value: "teacher=1,self=1", Usage: "ratios of the training mix by source: teacher (its episodes) and self (kept samples)"},
			&cli.StringFlag{Name: "method", Value: "react", Usage: "react, cot, reflexion or io"},
			&cli.StringFlag{Name: "format", Value: string(agent.FormatAlpaca), Usage: "prompt format: fewshot, alpaca or chat"},
			&cli.StringFlag{Name: "prompt-file", Usage: "few-shot prompt `FILE` (with --format fewshot)"},
			&cli.IntFlag{Name: "max-tokens", Value: improve.DefaultMaxTokens, Usage: "tokens per model turn"},
			&cli.IntFlag{Name: "max-turns", Usage: "model turns per episode (0: the method's)"},
			&cli.BoolFlag{Name: "grammar", Usage: "constrain every turn with a GBNF grammar"},
			&cli.StringFlag{Name: "search", Value: agent.SearchLocal, Usage: "search backend: local, serpapi, replay or none"},
			&cli.StringFlag{Name: "corpus", Value: "wiki", Usage: "local search corpus `NAME` (the demo's: world-SEED)"},
			&cli.StringFlag{Name: "recipe", Value: "agent", Usage: "training defaults: agent or fireact (see fireact finetune)"},
			&cli.IntFlag{Name: "steps", Usage: "optimizer steps per round (0: the recipe's epochs)"},
			&cli.IntFlag{Name: "epochs", Usage: "passes over each round's mix (with --steps 0)"},
			&cli.Float64Flag{Name: "lr", Usage: fmt.Sprintf("peak learning rate (default %g)", finetune.DefaultLR)},
			&cli.IntFlag{Name: "rank", Usage: "LoRA rank (default: the starting adapter's, else the recipe's)"},
			&cli.StringFlag{Name: "targets", Usage: "LoRA targets (must match the starting adapter's; default q,v)"},
			&cli.IntFlag{Name: "cutoff", Usage: "tokens per training example"},
			&cli.IntFlag{Name: "batch-tokens", Usage: "tokens per packed training micro-batch"},
			&cli.IntFlag{Name: "concurrency", Aliases: []string{"j"}, Usage: "episodes in flight on the engine (default 8)"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads (0: all)"},
			&cli.IntFlag{Name: "gpu-layers", Aliases: []string{"ngl"}, Usage: "layers to offload to a GPU (-1: all)"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of sampling, question order and training"},
		},
		Action: func(c *cli.Context) error {
			train, dev, err := improveTasks(c)
			if err != nil {
				return err
			}
			cfg := improve.Config{Name: c.String("run"), Dir: c.String("dir"), Base: c.String("base"), Init: c.String("lora"),
				Train: train, Dev: dev, TeacherDataset: c.String("teacher-dataset"), Rounds: c.Int("rounds"), K: c.Int("k"),
				Temperature: c.Float64("temperature"), TopP: c.Float64("top-p"), MinF1: c.Float64("min-f1"),
				Method: c.String("method"), MaxTokens: c.Int("max-tokens"), MaxTurns: c.Int("max-turns"), Grammar: c.Bool("grammar"),
				Search:      agent.SearchOptions{Backend: c.String("search"), Corpus: c.String("corpus"), Seed: c.Int64("seed")},
				Concurrency: c.Int("concurrency"), Threads: c.Int("threads"), GPULayers: c.Int("gpu-layers"), Seed: c.Int64("seed"),
				Log: c.App.ErrWriter,
				Training: finetune.Config{MaxSteps: c.Int("steps"), Epochs: c.Int("epochs"), LR: c.Float64("lr"), Rank: c.Int("rank"),
					Cutoff: c.Int("cutoff"), MaxTokens: c.Int("batch-tokens"), Seed: uint64(c.Int64("seed"))}}
			cfg.Learner = c.String("learner")
			if cfg.Learner == improve.LearnerGRPO {
				cfg.GRPO = improve.GRPOConfig{Clip: c.Float64("clip"), KL: c.Float64("kl"), Epochs: c.Int("epochs"), LR: c.Float64("lr"),
					Reward: c.String("reward"), FormatPenalty: c.Float64("format-penalty"), MaxTokens: c.Int("batch-tokens"),
					Cutoff: c.Int("cutoff"), Rank: c.Int("rank"), Targets: c.String("targets")}
				if c.IsSet("steps") || c.IsSet("mix") || c.IsSet("min-f1") || c.IsSet("recipe") {
					return errors.New("--steps, --mix, --min-f1 and --recipe are rejection sampling's; grpo takes --epochs, --lr, --clip, --kl, --reward")
				}
			}
			order := c.String("order")
			if cfg.TrainIndices, err = tasks.Select(train, order, c.Int64("seed"), 0, c.Int("train-limit")); err != nil {
				return err
			}
			if cfg.DevIndices, err = tasks.Select(dev, order, c.Int64("seed"), 0, c.Int("dev-limit")); err != nil {
				return err
			}
			if cfg.Dir == "" {
				cfg.Dir = "improve-" + strings.NewReplacer("/", "-", string(filepath.Separator), "-").Replace(cfg.Name)
			}
			for _, r := range c.StringSlice("teacher") {
				for _, p := range strings.Split(r, ",") {
					if p = strings.TrimSpace(p); p != "" {
						cfg.TeacherRuns = append(cfg.TeacherRuns, p)
					}
				}
			}
			if cfg.Format, err = agent.ParseFormat(c.String("format")); err != nil {
				return err
			}
			if f := c.String("prompt-file"); f != "" {
				if cfg.FewShot, err = agent.LoadPromptFile(f); err != nil {
					return err
				}
			}
			if cfg.Mix, err = finetune.ParseMix(c.String("mix")); err != nil {
				return err
			}
			if cfg.Training.Recipe, err = finetune.ParseRecipe(c.String("recipe")); err != nil {
				return err
			}
			if c.IsSet("targets") {
				if cfg.Training.Targets, err = llama.ParseTargets(c.String("targets")); err != nil {
					return err
				}
			}
			s, err := openStoreDB(c)
			if err != nil {
				return err
			}
			defer s.Close()
			res, err := improve.Run(c.Context, s, cfg)
			if err != nil {
				if c.Context.Err() != nil && errors.Is(err, c.Context.Err()) {
					fmt.Fprintln(c.App.ErrWriter, "interrupted: run the same command to resume")
				}
				return err
			}
			w := c.App.Writer
			fmt.Fprintf(w, "%-6s %8s %7s %5s %7s %9s %8s %7s\n", "round", "samples", "passed", "kept", "solved", "trained", "dev EM", "dev F1")
			for _, r := range res.Rounds {
				fmt.Fprintf(w, "%-6d %8d %7d %5d %7d %9s %8.3f %7.3f\n", r.Round, r.Samples, r.Passed, r.Kept, r.Solved,
					fmt.Sprintf("%d+%d", r.SelfExamples, r.TeacherExamples), r.DevEM, r.DevF1)
			}
			fmt.Fprintf(w, "adapter: %s\n", res.Adapter)
			return nil
		},
	}
}

// improveTasks opens the train and dev splits: a task's files, or the demo
// world's questions.
func improveTasks(c *cli.Context) (train, dev tasks.Task, err error) {
	name := c.String("task")
	if name == world.TaskName {
		wc := demo.DefaultConfig().World
		if c.Bool("small") {
			wc = demo.SmallConfig().World
		}
		wc.Seed = c.Uint64("world-seed")
		w := world.New(wc)
		if train, err = w.Task(c.String("train-split")); err != nil {
			return nil, nil, err
		}
		dev, err = w.Task(c.String("dev-split"))
	} else {
		dir := tasks.DataDir(c.String("data-dir"))
		if train, err = tasks.Open(dir, name, c.String("train-split")); err != nil {
			return nil, nil, err
		}
		dev, err = tasks.Open(dir, name, c.String("dev-split"))
	}
	if err != nil {
		return nil, nil, err
	}
	return train, dev, nil
}
