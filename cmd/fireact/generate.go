package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
)

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "run a teacher over a task split and store its trajectories (resumable with --run)",
		Flags: append(append(splitFlags(), agentFlags(string(agent.FormatFewShot), true)...),
			&cli.StringFlag{Name: "methods", Value: "react", Usage: "comma-separated methods: react, cot, reflexion, io (one run each)"},
		),
		Action: func(c *cli.Context) error {
			return runSplit(c, store.KindGenerate, strings.Split(c.String("methods"), ","))
		},
	}
}

// splitFlags choose the questions of a run.
func splitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "task", Value: tasks.HotpotQA, Usage: "hotpotqa, strategyqa, bamboogle or mmlu"},
		&cli.StringFlag{Name: "split", Value: "dev"},
		&cli.StringFlag{Name: "order", Value: tasks.OrderFireAct, Usage: "natural, fireact (Python random.Random(233).shuffle) or random (--seed)"},
		&cli.IntFlag{Name: "offset", Usage: "skip this many questions of the order"},
		&cli.IntFlag{Name: "limit", Usage: "at most this many questions (0: all)"},
		&cli.StringFlag{Name: "run", Usage: "run `NAME` (or id) to create or resume; with several methods NAME-METHOD"},
	}
}

// runSplit is generate and eval: build the task, LLM, tools and one agent per
// method, and run each over the selected questions.
func runSplit(c *cli.Context, kind string, methods []string) error {
	sc, err := tasks.ParseScoring(c.String("scoring"))
	if err != nil {
		return err
	}
	task, err := tasks.OpenScoring(tasks.DataDir(c.String("data-dir")), c.String("task"), c.String("split"), sc)
	if err != nil {
		return err
	}
	order := c.String("order")
	idx, err := tasks.Select(task, order, c.Int64("seed"), c.Int("offset"), c.Int("limit"))
	if err != nil {
		return err
	}
	s, err := openStoreDB(c)
	if err != nil {
		return err
	}
	defer s.Close()
	ls, agents, so, err := buildAgents(c, s, task.Name(), methods)
	if err != nil {
		return err
	}
	defer ls.Close()
	for _, a := range agents {
		method := a.Method.Name
		name := c.String("run")
		if name != "" && len(methods) > 1 {
			name += "-" + method
		}
		cfg := agent.NewRunConfig(ls, a, so)
		cfg.Order, cfg.Offset, cfg.Limit, cfg.Scoring = order, c.Int("offset"), c.Int("limit"), string(sc)
		rep, err := agent.RunTask(c.Context, agent.RunSpec{Store: s, Task: task, Agent: a, Indices: idx,
			Concurrency: ls.Concurrency, Progress: progressPrinter(method),
			Run: cfg.StoreRun(name, kind, task.Name(), task.Split())})
		if rep.Run.ID != 0 {
			printSummary(c, rep)
		}
		if err != nil {
			return err
		}
		if cmp := c.String("compare"); kind == store.KindEval && cmp != "" {
			if err := printCompare(c, s, rep.Run.ID, cmp); err != nil {
				return err
			}
		}
	}
	return nil
}

// printCompare prints the per-question diff of this run against another.
func printCompare(c *cli.Context, s *store.Store, runID int64, other string) error {
	o, _, err := agent.FindRun(c.Context, s, other)
	if err != nil {
		return err
	}
	rows, err := s.Diff(c.Context, o.ID, runID)
	if err != nil {
		return err
	}
	changed := 0
	for _, r := range rows {
		if r.EMA == r.EMB && r.HasA && r.HasB {
			continue
		}
		changed++
		fmt.Fprintf(c.App.Writer, "%d\tEM %.0f -> %.0f\tgold %q\t%q -> %q\t%s\n", r.Index, r.EMA, r.EMB, r.Gold, r.PredA, r.PredB, r.Question)
	}
	fmt.Fprintf(c.App.Writer, "compared with run %d: %d questions, %d differ in EM\n", o.ID, len(rows), changed)
	return nil
}
