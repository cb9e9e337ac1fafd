package serve

import (
	"context"
	"errors"
	"fmt"

	"github.com/fireact/fireact/llama"
)

// Options are what `fireact serve` needs to load a model and serve it.
type Options struct {
	// ModelPath is the base GGUF model; Name the name it is served under (default
	// its file name without .gguf).
	ModelPath string
	Name      string
	// LoRAs are "NAME=FILE" or "FILE" adapter specs (see ParseLoRASpec).
	LoRAs []string
	// Parallel is the number of sequences decoded together (default 8); Ctx the KV
	// cells all of them share (default 4096); Threads the CPU threads (0: all).
	Parallel, Ctx, Threads int
	// GPULayers is the number of layers to offload to a GPU (-1: all).
	GPULayers int
	// Addr is the address to listen on, e.g. "127.0.0.1:8080".
	Addr string
	// Config holds the server settings; Engine, BaseName and Adapters are filled
	// in by Run.
	Config Config
}

// Run loads the model and adapters, serves them on o.Addr until ctx is
// cancelled, shuts down gracefully and frees everything it loaded.
func Run(ctx context.Context, o Options) error {
	if o.ModelPath == "" {
		return errors.New("serve: no model file")
	}
	if o.Name == "" {
		o.Name = ModelName(o.ModelPath)
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	m, err := llama.LoadModel(o.ModelPath, llama.ModelOptions{GPULayers: o.GPULayers})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer m.Close()
	cfg := o.Config
	cfg.BaseName = o.Name
	for _, spec := range o.LoRAs {
		name, path, err := ParseLoRASpec(spec)
		if err != nil {
			return err
		}
		a, err := m.LoadAdapter(path)
		if err != nil {
			return fmt.Errorf("serve: adapter %s: %w", name, err)
		}
		defer a.Close()
		cfg.Adapters = append(cfg.Adapters, NamedAdapter{Name: name, Adapter: a})
	}
	e, err := llama.NewEngine(m, llama.EngineOptions{Context: llama.ContextOptions{
		NCtx: o.Ctx, NSeqMax: o.Parallel, Threads: o.Threads}})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Deferred after the adapters and the model, so closed before them, and only
	// after Serve has let the requests in flight finish.
	defer e.Close()
	cfg.Engine = e
	s, err := New(cfg)
	if err != nil {
		return err
	}
	return s.ListenAndServe(ctx, o.Addr)
}
