package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/agent"
	"github.com/fireact/fireact/agent/serve"
	"github.com/fireact/fireact/finetune"
	"github.com/fireact/fireact/store"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve a model and its LoRA adapters over an OpenAI-compatible HTTP API",
		Description: `Serves /v1/models, /v1/completions, /v1/chat/completions (streamed or not),
/v1/agent/run, /health and /metrics. Each adapter is served as the model name
BASE+ADAPTER, so one server holds the base model and every fine-tuned agent;
requests for different adapters are batched together. Binds 127.0.0.1 unless
--addr says otherwise; set an API key before exposing it.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Usage: "GGUF model `FILE`", Required: true, EnvVars: []string{"FIREACT_MODEL"}},
			&cli.StringFlag{Name: "name", Usage: "model `NAME` to serve the base under (default: the file name without .gguf)"},
			&cli.StringSliceFlag{Name: "lora", Usage: "LoRA adapter `NAME=FILE` or FILE, served as BASE+NAME (repeatable)"},
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", EnvVars: []string{"FIREACT_ADDR"}, Usage: "`HOST:PORT` to listen on"},
			&cli.StringFlag{Name: "api-key", EnvVars: []string{"FIREACT_API_KEY"}, Usage: "require \"Authorization: Bearer `KEY`\" (prefer the environment variable: flags show in ps)"},
			&cli.IntFlag{Name: "parallel", Aliases: []string{"np"}, Value: 8, Usage: "requests decoded together (engine slots)"},
			&cli.IntFlag{Name: "ctx", Aliases: []string{"c"}, Value: 16384, Usage: "KV cache cells, split evenly between the slots (as llama-server)"},
			&cli.IntFlag{Name: "threads", Aliases: []string{"t"}, Usage: "CPU threads (0: all)"},
			&cli.IntFlag{Name: "gpu-layers", Aliases: []string{"ngl"}, Usage: "layers to offload to a GPU (-1: all)"},
			&cli.StringFlag{Name: "chat-template", Usage: "chat template `NAME` (llama.cpp built-in, e.g. chatml) or text, overriding the model's"},
			&cli.Int64Flag{Name: "max-body", Value: serve.DefaultMaxBodyBytes, Usage: "largest request body in `BYTES` (larger: 413)"},
			&cli.IntFlag{Name: "max-tokens", Value: serve.DefaultMaxTokens, Usage: "largest max_tokens a request may ask for, and the default"},
			&cli.Float64Flag{Name: "temperature", Usage: "temperature of requests that give none (0: greedy)"},
			&cli.DurationFlag{Name: "timeout", Value: serve.DefaultTimeout, Usage: "per-request time limit (negative: none)"},
			&cli.IntFlag{Name: "max-queue", Value: serve.DefaultMaxQueue, Usage: "generation requests that may wait for a slot beyond --parallel; more get 503 + Retry-After (negative: no limit)"},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: serve.DefaultShutdownTimeout, Usage: "how long a shutdown waits for requests in flight"},
			&cli.StringFlag{Name: "db", Value: store.DefaultPath, EnvVars: []string{store.EnvPath}, Usage: "SQLite database `FILE` where /v1/agent/run records episodes"},
			&cli.StringFlag{Name: "search", Value: agent.SearchLocal, Usage: "default search backend of /v1/agent/run: local, serpapi, replay or none"},
			&cli.StringFlag{Name: "corpus", Value: "wiki", Usage: "local search corpus `NAME` (fireact index)"},
			&cli.StringFlag{Name: "search-url", Usage: "SerpAPI endpoint `URL` override"},
		},
		Action: func(c *cli.Context) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			st, err := store.Open(c.Context, c.String("db"))
			if err != nil {
				return err
			}
			defer st.Close()
			formats, tmpl, err := serveAdapterDefaults(c)
			if err != nil {
				return err
			}
			runner, err := serve.NewAgentRunner(serve.AgentRunnerOptions{Store: st, Search: c.String("search"),
				Corpus: c.String("corpus"), SerpAPIURL: c.String("search-url"), AdapterFormats: formats})
			if err != nil {
				return err
			}
			return serve.Run(c.Context, serve.Options{
				ModelPath: c.String("model"),
				Name:      c.String("name"),
				LoRAs:     c.StringSlice("lora"),
				Parallel:  c.Int("parallel"),
				Ctx:       c.Int("ctx"),
				Threads:   c.Int("threads"),
				GPULayers: c.Int("gpu-layers"),
				Addr:      c.String("addr"),
				Config: serve.Config{
					ChatTemplate:    tmpl,
					APIKey:          c.String("api-key"),
					MaxBodyBytes:    c.Int64("max-body"),
					MaxTokens:       c.Int("max-tokens"),
					Temperature:     float32(c.Float64("temperature")),
					Timeout:         c.Duration("timeout"),
					ShutdownTimeout: c.Duration("shutdown-timeout"),
					MaxQueue:        c.Int("max-queue"),
					AgentRunner:     runner,
					Logger:          log,
				},
			})
		},
	}
}

// serveAdapterDefaults reads the usage recorded in the --lora adapters: the
// prompt format of each (for /v1/agent/run requests that name none), the chat
// template to serve with when --chat-template is not given (a chat-trained
// adapter's), and a warning on stderr for an adapter trained on another base.
func serveAdapterDefaults(c *cli.Context) (formats map[string]string, tmpl string, err error) {
	tmpl = c.String("chat-template")
	var paths []string
	for _, spec := range c.StringSlice("lora") {
		_, path, err := serve.ParseLoRASpec(spec)
		if err != nil {
			return nil, "", err
		}
		paths = append(paths, path)
	}
	if len(paths) == 0 {
		return nil, tmpl, nil
	}
	usages, d, err := finetune.AdapterPromptDefaults(paths)
	if err != nil {
		return nil, "", err
	}
	for _, w := range d.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "warning:", w)
	}
	formats = map[string]string{}
	var hash string
	for _, u := range usages {
		if u.Format != "" && u.Format != finetune.FormatText {
			formats[u.Path] = u.Format
		}
		if u.BaseSHA256 != "" && hash == "" {
			if hash, err = store.FileHash(c.String("model")); err != nil {
				return nil, "", err
			}
		}
		if w := u.BaseWarning(hash); w != "" {
			fmt.Fprintln(c.App.ErrWriter, "warning:", w)
		}
	}
	if !c.IsSet("chat-template") && d.ChatTemplate != "" {
		tmpl = d.ChatTemplate
	}
	return formats, tmpl, nil
}
