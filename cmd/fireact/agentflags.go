package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/store"
)

// agentFlags are the flags shared by generate, eval and run: the LLM backend,
// the prompt, sampling and the search tool.
func agentFlags(defaultFormat string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "backend", Value: "local", Usage: "LLM backend: local (GGUF through llama.cpp) or openai (any OpenAI-compatible API; key from " + agent.OpenAIKeyEnv + ")"},
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, EnvVars: []string{"FIREACT_MODEL"}, Usage: "GGUF `FILE` (local) or model name (openai)"},
		&cli.StringSliceFlag{Name: "lora", Usage: "LoRA adapter `FILE` for the local model (repeatable; FILE:SCALE sets a scale)"},
		&cli.IntFlag{Name: "gpu-layers", Aliases: []string{"ngl"}, Usage: "layers to offload to a GPU (-1: all)"},
		&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads of the local engine (0: all)"},
		&cli.IntFlag{Name: "kv", Usage: "KV cache cells shared by all questions in flight (0: 2048 per question, at least 4096)"},
		&cli.StringFlag{Name: "base-url", EnvVars: []string{"OPENAI_BASE_URL"}, Usage: "OpenAI-compatible API base `URL` (e.g. http://127.0.0.1:8080/v1)"},
		&cli.BoolFlag{Name: "completions", Usage: "openai: send prompts to /completions instead of /chat/completions"},
		&cli.StringFlag{Name: "price", Usage: "openai: `IN,OUT` USD per 1M tokens (default: the built-in table by model name)"},
		&cli.IntFlag{Name: "concurrency", Aliases: []string{"j"}, Usage: "questions in flight (0: 8 local, 4 openai)"},
		&cli.StringFlag{Name: "format", Value: defaultFormat, Usage: "prompt format: fewshot, alpaca (FireAct's fine-tuning format) or chat"},
		&cli.StringFlag{Name: "scoring", Value: string(tasks.ScoringFireAct), Usage: "fireact (FireAct's scorers and MMLU \"Question: \" wording, exactly) or lenient (also reads \"the answer is B\", \"(B)\", \"true\")"},
		&cli.StringFlag{Name: "prompt-file", Usage: "few-shot prompt `FILE` used verbatim before the question (e.g. FireAct's prompts/react_hotpotqa_google.txt)"},
		&cli.BoolFlag{Name: "grammar", Usage: "local: constrain every turn with a GBNF grammar so it always parses"},
		&cli.Float64Flag{Name: "temperature", Aliases: []string{"temp"}, Value: 0, Usage: "sampling temperature (0: greedy, as FireAct)"},
		&cli.Float64Flag{Name: "top-p", Value: 1},
		&cli.IntFlag{Name: "max-tokens", Value: 256, Usage: "tokens per model turn"},
		&cli.IntFlag{Name: "max-turns", Usage: "model turns per episode (0: the method's; FireAct: 11)"},
		&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of sampling and noise"},
		&cli.StringFlag{Name: "search", Value: agent.SearchLocal, Usage: "search backend: serpapi (key from " + agent.SerpAPIKeyEnv + "), local, replay or none"},
		&cli.StringFlag{Name: "corpus", Value: "wiki", Usage: "local search corpus `NAME` (fireact index)"},
		&cli.StringFlag{Name: "search-url", Usage: "SerpAPI endpoint `URL` override"},
		&cli.Float64Flag{Name: "noise", Usage: "probability that a search observation is replaced by None or another query's (FireAct's robustness test)"},
		storeDBFlag(),
		dataDirFlag(),
	}
}

// llmSetup is a built LLM with what identifies it in the run record.
type llmSetup struct {
	llm         agent.LLM
	local       bool
	modelHash   string
	adapter     string
	adapterHash string
	close       func()
	conc        int
}

func buildLLM(c *cli.Context) (*llmSetup, error) {
	if c.String("model") == "" {
		return nil, fmt.Errorf("--model is required (a GGUF file, or a model name with --backend openai)")
	}
	conc := c.Int("concurrency")
	switch c.String("backend") {
	case "openai":
		if len(c.StringSlice("lora")) > 0 {
			return nil, fmt.Errorf("--lora needs --backend local")
		}
		if conc <= 0 {
			conc = 4
		}
		opts := agent.OpenAIOptions{Model: c.String("model"), BaseURL: c.String("base-url"),
			Completions: c.Bool("completions"), Concurrency: conc}
		if p := c.String("price"); p != "" {
			pr, err := agent.ParsePrice(p)
			if err != nil {
				return nil, err
			}
			opts.Price = pr
		}
		o, err := agent.NewOpenAI(opts)
		if err != nil {
			return nil, err
		}
		return &llmSetup{llm: o, close: func() {}, conc: conc}, nil
	case "local":
		if conc <= 0 {
			conc = 8
		}
		m, adapters, err := openModel(c)
		if err != nil {
			return nil, err
		}
		kv := c.Int("kv")
		if kv <= 0 {
			kv = max(4096, 2048*conc)
		}
		e, err := llama.NewEngine(m, llama.EngineOptions{Context: llama.ContextOptions{NCtx: kv, NSeqMax: conc, Threads: c.Int("threads")}})
		if err != nil {
			m.Close()
			return nil, err
		}
		ls := &llmSetup{llm: &agent.LocalLLM{Engine: e, Adapters: adapters}, local: true, conc: conc,
			close: func() {
				e.Close()
				for _, a := range adapters {
					a.Adapter.Close()
				}
				m.Close()
			}}
		ls.modelHash, _ = store.FileHash(c.String("model"))
		var names, hashes []string
		for _, a := range adapters {
			names = append(names, a.Adapter.Path())
			h, _ := store.FileHash(a.Adapter.Path())
			hashes = append(hashes, h)
		}
		ls.adapter, ls.adapterHash = strings.Join(names, ","), strings.Join(hashes, ",")
		return ls, nil
	}
	return nil, fmt.Errorf("unknown --backend %q (want local or openai)", c.String("backend"))
}

// buildAgent makes the agent for one method.
func buildAgent(c *cli.Context, ls *llmSetup, search agent.Tool, methodName, taskName string) (*agent.Agent, error) {
	m, err := agent.MethodByName(methodName)
	if err != nil {
		return nil, err
	}
	if n := c.Int("max-turns"); n > 0 && m.MaxTurns > 1 {
		m.MaxTurns = n
	}
	f, err := agent.ParseFormat(c.String("format"))
	if err != nil {
		return nil, err
	}
	fewshot := agent.FewShotPrompt(taskName, m)
	if p := c.String("prompt-file"); p != "" {
		if fewshot, err = agent.LoadPromptFile(p); err != nil {
			return nil, err
		}
	}
	if c.Bool("grammar") && !ls.local {
		return nil, fmt.Errorf("--grammar needs --backend local")
	}
	return &agent.Agent{LLM: ls.llm, Search: search, Method: m,
		Prompt:   agent.Prompt{Format: f, FewShot: fewshot},
		Sampling: agent.Sampling{Temperature: c.Float64("temperature"), TopP: c.Float64("top-p"), MaxTokens: c.Int("max-tokens"), Seed: c.Int64("seed")},
		Grammar:  c.Bool("grammar")}, nil
}

func buildSearch(c *cli.Context, s *store.Store, queries []string) (agent.Tool, error) {
	return agent.NewSearch(c.Context, s, agent.SearchOptions{Backend: c.String("search"), Corpus: c.String("corpus"),
		BaseURL: c.String("search-url"), Noise: c.Float64("noise"), Seed: c.Int64("seed"), NoiseQueries: queries})
}

// runConfig is the run's recorded configuration: every flag that shapes
// results (the store redacts anything secret-looking on top).
func runConfig(c *cli.Context, method string) string {
	cfg := map[string]any{"method": method}
	for _, name := range []string{"backend", "model", "base-url", "completions", "format", "scoring", "prompt-file", "grammar",
		"temperature", "top-p", "max-tokens", "max-turns", "seed", "search", "corpus", "noise", "task", "split", "order",
		"offset", "limit", "concurrency"} {
		if c.IsSet(name) || name == "backend" || name == "format" || name == "scoring" || name == "search" || name == "seed" {
			cfg[name] = c.Value(name)
		}
	}
	cfg["lora"] = c.StringSlice("lora")
	b, _ := json.Marshal(cfg)
	return string(b)
}

// taskQuestions lists a task's question texts, the "other queries" of noise.
func taskQuestions(t tasks.Task) []string {
	qs := make([]string, t.Len())
	for i := range qs {
		qs[i] = t.Question(i).Text
	}
	return qs
}

// progressPrinter writes a one-line progress report to stderr, rewritten in
// place: done/total, EM so far, ETA and tokens per second.
func progressPrinter(label string) func(agent.Progress) {
	return func(p agent.Progress) {
		fmt.Fprintf(os.Stderr, "\r%s %d/%d (skipped %d, errors %d)  EM %.3f  ETA %s  %.1f tok/s   ",
			label, p.Done, p.Total, p.Skipped, p.Errors, p.EM, p.ETA.Round(time.Second), p.TokensPerSec)
		if p.Done == p.Total {
			fmt.Fprintln(os.Stderr)
		}
	}
}

// printSummary prints a run's results the way eval and generate report them.
func printSummary(c *cli.Context, rep agent.Report) {
	s := rep.Summary
	n := max(s.Episodes-s.ByStatus[store.EpisodeError], 1)
	fmt.Fprintf(c.App.Writer, "run %d (%s): %d episodes (%d done, %d unfinished, %d errors) in %s\n",
		rep.Run.ID, rep.Run.Status, s.Episodes, s.ByStatus[store.EpisodeDone], s.ByStatus[store.EpisodeUnfinished],
		s.ByStatus[store.EpisodeError], rep.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(c.App.Writer, "EM %.4f  F1 %.4f  mean turns %.2f  %.2f s/question  %.0f prompt + %.0f generated tokens/question  cost $%.4f\n",
		s.EM, s.F1, s.MeanTurns, s.SecondsPerQ, float64(s.PromptTokens)/float64(n), float64(s.GeneratedTokens)/float64(n), s.Cost)
}

// trailingFlags lets flags follow the positional argument (`fireact index
// FILE --corpus NAME`), which urfave/cli v2 would take as more arguments: it
// sets each "--name value", "--name=value" or boolean "--name" after the first
// argument and returns the remaining positional arguments.
func trailingFlags(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	if len(args) == 0 {
		return args, nil
	}
	pos := []string{args[0]}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var isBool bool
		for _, f := range c.Command.Flags {
			for _, n := range f.Names() {
				if n == name {
					_, isBool = f.(*cli.BoolFlag)
				}
			}
		}
		if !hasVal && !isBool {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag %s needs a value", a)
			}
			i++
			val = args[i]
		} else if !hasVal {
			val = "true"
		}
		if err := c.Set(name, val); err != nil {
			return nil, fmt.Errorf("flag %s: %w", a, err)
		}
	}
	return pos, nil
}
