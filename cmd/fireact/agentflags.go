package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/store"
)

// agentFlags are the flags shared by generate, eval and run: the LLM backend,
// the prompt, sampling and the search tool. oracleRetry is the default of
// --oracle-retry: on for a teacher generating data, off where a score counts.
func agentFlags(defaultFormat string, oracleRetry bool) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "backend", Value: agent.BackendLocal, Usage: "LLM backend: local (GGUF through llama.cpp) or openai (any OpenAI-compatible API; key from " + agent.OpenAIKeyEnv + ")"},
		&cli.StringFlag{Name: "model", Aliases: []string{"m"}, EnvVars: []string{"FIREACT_MODEL"}, Usage: "GGUF `FILE` (local) or model name (openai)"},
		&cli.StringSliceFlag{Name: "lora", Usage: "LoRA adapter `FILE` for the local model (repeatable; FILE:SCALE sets a scale)"},
		&cli.IntFlag{Name: "gpu-layers", Aliases: []string{"ngl"}, Usage: "layers to offload to a GPU (-1: all)"},
		&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads of the local engine (0: all)"},
		&cli.IntFlag{Name: "kv", Usage: "KV cache cells shared by all questions in flight (0: each question gets its prompt + max turns x (max tokens + an observation))"},
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
		&cli.StringFlag{Name: "search-style", Value: agent.SearchStyleFireAct, Usage: "local search observations: fireact (a snippet of the best page, as FireAct's Google search) or react (ReAct's Wikipedia: a page's first sentences or similar titles, and lookup[keyword])"},
		&cli.StringFlag{Name: "search-url", Usage: "SerpAPI endpoint `URL` override"},
		&cli.Float64Flag{Name: "noise", Usage: "probability that a search observation is replaced (FireAct's robustness test)"},
		&cli.StringFlag{Name: "noise-kind", Value: agent.NoiseMixed, Usage: "what replaces a noisy observation: none (\"None\"), random (another query's recorded observation, never a new search) or mixed (either)"},
		&cli.BoolFlag{Name: "oracle-retry", Value: oracleRetry, Usage: "reflexion: retry an answer the gold answer says is wrong (an oracle: fine for generating data, not for a score)"},
		storeDBFlag(),
		dataDirFlag(),
	}
}

// llmOptions reads the LLM flags.
func llmOptions(c *cli.Context) (agent.LLMOptions, error) {
	o := agent.LLMOptions{Backend: c.String("backend"), Model: c.String("model"), BaseURL: c.String("base-url"),
		Completions: c.Bool("completions"), Price: c.String("price"), Concurrency: c.Int("concurrency"),
		Threads: c.Int("threads"), GPULayers: c.Int("gpu-layers"), KV: c.Int("kv")}
	for _, spec := range c.StringSlice("lora") {
		path, scale, err := parseLoraSpec(spec)
		if err != nil {
			return o, err
		}
		o.LoRAs = append(o.LoRAs, agent.LoRA{Path: path, Scale: scale})
	}
	return o, nil
}

// agentOptions reads the prompt and sampling flags for one method.
func agentOptions(c *cli.Context, method, task string) agent.AgentOptions {
	return agent.AgentOptions{Method: method, MaxTurns: c.Int("max-turns"), Format: c.String("format"), Task: task,
		PromptFile: c.String("prompt-file"), Grammar: c.Bool("grammar"), OracleRetry: c.Bool("oracle-retry"),
		SearchStyle: c.String("search-style"),
		Sampling: agent.Sampling{Temperature: c.Float64("temperature"), TopP: c.Float64("top-p"),
			MaxTokens: c.Int("max-tokens"), Seed: c.Int64("seed")}}
}

// searchOptions reads the search and noise flags.
func searchOptions(c *cli.Context) agent.SearchOptions {
	return agent.SearchOptions{Backend: c.String("search"), Corpus: c.String("corpus"), Style: c.String("search-style"), BaseURL: c.String("search-url"),
		Noise: c.Float64("noise"), NoiseKind: c.String("noise-kind"), Seed: c.Int64("seed")}
}

// buildAgents makes the search tool, one agent per method and the LLM they
// share, sized for them. The caller closes the LLM.
func buildAgents(c *cli.Context, s *store.Store, task string, methods []string) (*agent.LLMSetup, []*agent.Agent, agent.SearchOptions, error) {
	usages, defaults, err := adapterDefaults(c)
	if err != nil {
		return nil, nil, agent.SearchOptions{}, err
	}
	so := searchOptions(c)
	search, err := agent.NewSearch(c.Context, s, so)
	if err != nil {
		return nil, nil, so, err
	}
	var agents []*agent.Agent
	for _, m := range methods {
		a, err := agent.NewAgent(agentOptions(c, strings.TrimSpace(m), task), search)
		if err != nil {
			return nil, nil, so, err
		}
		agents = append(agents, a)
	}
	lo, err := llmOptions(c)
	if err != nil {
		return nil, nil, so, err
	}
	ls, err := agent.NewLLM(lo, agents...)
	if err != nil {
		return nil, nil, so, err
	}
	if ls.Warning != "" {
		fmt.Fprintln(c.App.ErrWriter, "warning:", ls.Warning)
	}
	for _, u := range usages {
		// ModelID is the base file's sha256, as the adapter recorded it.
		if w := u.BaseWarning(ls.ModelID); w != "" {
			fmt.Fprintln(c.App.ErrWriter, "warning:", w)
		}
	}
	if local, ok := ls.LLM.(*agent.LocalLLM); ok && c.String("format") == string(agent.FormatChat) && defaults.ChatTemplate != "" {
		local.ChatTemplate = defaults.ChatTemplate
	}
	return ls, agents, so, nil
}

// adapterDefaults reads the usage recorded in the --lora adapters of a local
// model and, when the user gave no --format, sets the format they were trained
// on (a flag overrides).
func adapterDefaults(c *cli.Context) ([]finetune.AdapterUsage, finetune.PromptDefaults, error) {
	if c.String("backend") != agent.BackendLocal && c.String("backend") != "" {
		return nil, finetune.PromptDefaults{}, nil
	}
	var paths []string
	for _, spec := range c.StringSlice("lora") {
		path, _, err := parseLoraSpec(spec)
		if err != nil {
			return nil, finetune.PromptDefaults{}, err
		}
		paths = append(paths, path)
	}
	usages, d, err := finetune.AdapterPromptDefaults(paths)
	if err != nil {
		return nil, d, err
	}
	for _, w := range d.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "warning:", w)
	}
	if d.Format != "" && !c.IsSet("format") {
		if err := c.Set("format", d.Format); err != nil {
			return nil, d, fmt.Errorf("format from adapter: %w", err)
		}
	}
	return usages, d, nil
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
