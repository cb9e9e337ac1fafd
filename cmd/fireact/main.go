// Command fireact generates agent trajectories with a teacher model, stores them in
// SQLite, fine-tunes LoRA adapters for small GGUF models on them, and evaluates and
// serves the fine-tuned agents. Run `fireact help` for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/fireact/fireact/llama"
)

// version is set at link time by the Makefile (-X main.version=...).
var version = "dev"

func main() {
	os.Exit(run(os.Args))
}

// run is the whole command for args (args[0] is the program name) and returns
// the process's exit status. The fault-injection tests run it in child
// processes they kill.
func run(args []string) int {
	// The first Ctrl-C cancels the context so that runs stop cleanly and keep what
	// they recorded; a second one kills the process the default way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	app := newApp()
	err := app.RunContext(ctx, flagsFirst(app, args))
	stop()
	if err != nil {
		var exit cli.ExitCoder
		if errors.As(err, &exit) && exit.ExitCode() == 0 {
			return 0
		}
		fmt.Fprintln(os.Stderr, "fireact:", err)
		return 1
	}
	return 0
}

// loadGPUBackends loads GPU backends built by `make cuda` from FIREACT_LIB_PATH or
// from lib/fireact beside the binary's directory; the CPU backend is built in.
func loadGPUBackends(c *cli.Context) error {
	dir := os.Getenv("FIREACT_LIB_PATH")
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil
		}
		dir = filepath.Join(filepath.Dir(exe), "..", "lib", "fireact")
	}
	if _, err := os.Stat(dir); err != nil {
		return nil
	}
	n, err := llama.LoadBackends(dir)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(c.App.ErrWriter, "fireact: no GPU found by the backends in %s\n", dir)
	}
	return nil
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "fireact",
		Usage:                "fine-tune small local LLMs into tool-using agents (FireAct)",
		Version:              version,
		EnableBashCompletion: true,
		Before:               loadGPUBackends,
		HideHelpCommand:      false,
		// Commands are defined one per file; keep this list sorted by name.
		Commands: []*cli.Command{
			completeCommand(),
			convertCommand(),
			demoCommand(),
			evalCommand(),
			exportCommand(),
			finetuneCommand(),
			generateCommand(),
			importCommand(),
			improveCommand(),
			indexCommand(),
			infoCommand(),
			mergeCommand(),
			perplexityCommand(),
			questionsCommand(),
			reportCommand(),
			rlCommand(),
			runCommand(),
			searchCommand(),
			serveCommand(),
			tokenizeCommand(),
		},
	}
}
