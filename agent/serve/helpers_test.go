package serve

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
)

// fixture is a real server on 127.0.0.1 over a tiny generated model with two
// LoRA adapters ("a" and "b").
type fixture struct {
	model    *llama.Model
	engine   *llama.Engine
	adapters map[string]*llama.Adapter
	srv      *Server
	url      string // http://127.0.0.1:PORT
	stop     context.CancelFunc
	served   chan error // Serve's result
}

// newTinyModel writes and loads the tiny test model of the brief.
func newTinyModel(t testing.TB, dir string, chatTemplate string) (*llama.Model, map[string]*llama.Adapter) {
	t.Helper()
	path := filepath.Join(dir, "tiny.gguf")
	cfg := modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()), NEmbd: 64, NLayer: 2, NHead: 4,
		NHeadKV: 2, NFF: 128, NCtx: 2048, Seed: 1, ChatTemplate: chatTemplate}
	if err := modelgen.WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	m, err := llama.LoadModel(path, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	adapters := map[string]*llama.Adapter{}
	for i, name := range []string{"a", "b"} {
		ap := filepath.Join(dir, name+".gguf")
		lc := modelgen.LoRAConfig{Targets: modelgen.AllTargets(m.File(), "attn_q", "attn_v"), Rank: 4, Seed: uint64(10 + i)}
		if err := modelgen.WriteLoRA(ap, m.File(), lc); err != nil {
			t.Fatal(err)
		}
		a, err := m.LoadAdapter(ap)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		adapters[name] = a
	}
	return m, adapters
}

// newFixture starts a server; mutate adjusts its config before New.
func newFixture(t testing.TB, mutate func(*Config)) *fixture {
	t.Helper()
	m, adapters := newTinyModel(t, t.TempDir(), "")
	// One thread: on a shared 2-core machine, ggml's spinning thread barrier turns
	// any contention into stalls of hundreds of milliseconds per token.
	e, err := llama.NewEngine(m, llama.EngineOptions{Context: llama.ContextOptions{NCtx: 32768, NSeqMax: 8, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{model: m, engine: e, adapters: adapters}
	cfg := Config{Engine: e, BaseName: "tiny", Adapters: []NamedAdapter{
		{Name: "a", Adapter: adapters["a"]}, {Name: "b", Adapter: adapters["b"]},
	}}
	if mutate != nil {
		mutate(&cfg)
	}
	f.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	f.served = make(chan error, 1)
	go func() { f.served <- f.srv.Serve(ctx, ln) }()
	// Cleanups run last-in first-out: stop the server, then close the engine, then
	// the adapters and the model registered earlier.
	t.Cleanup(func() { e.Close() })
	t.Cleanup(func() { f.shutdown(t) })
	return f
}

// shutdown stops the server and waits for Serve to return (idempotent).
func (f *fixture) shutdown(t testing.TB) error {
	t.Helper()
	f.stop()
	select {
	case err, ok := <-f.served:
		if ok {
			close(f.served)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return 30 s after shutdown")
	}
	return nil
}

// client returns a go-openai client for the fixture.
func (f *fixture) client(key string) *openai.Client {
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = f.url + "/v1"
	return openai.NewClientWithConfig(cfg)
}

// direct generates greedily on the engine itself, the reference the server's
// answers must equal.
func (f *fixture) direct(t testing.TB, prompt, adapter string, maxTokens int) *llama.Result {
	t.Helper()
	req := llama.Request{Prompt: prompt, MaxTokens: maxTokens}
	if adapter != "" {
		req.Adapters = []llama.AdapterScale{{Adapter: f.adapters[adapter], Scale: 1}}
	}
	res, err := f.engine.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// apiError extracts the HTTP status and error code of a go-openai error.
func apiError(t testing.TB, err error) (int, string) {
	t.Helper()
	var ae *openai.APIError
	if errors.As(err, &ae) {
		code, _ := ae.Code.(string)
		return ae.HTTPStatusCode, code
	}
	var re *openai.RequestError
	if errors.As(err, &re) {
		return re.HTTPStatusCode, ""
	}
	t.Fatalf("not an API error: %v", err)
	return 0, ""
}
