package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/llama/modelgen"
	"github.com/fireact/fireact/store"
)

// usageModel writes a small llama made in code (no chat template of its own).
func usageModel(t *testing.T, path string, seed uint64) {
	t.Helper()
	if err := modelgen.WriteLlama(path, modelgen.LlamaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 512, Seed: seed,
	}); err != nil {
		t.Fatal(err)
	}
}

// runFormat returns the prompt format recorded in a run's configuration.
func runFormat(t *testing.T, db, run string) string {
	t.Helper()
	s, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.RunByName(context.Background(), run)
	if err != nil {
		t.Fatalf("run %s: %v", run, err)
	}
	var cfg struct{ Format string }
	if err := json.Unmarshal([]byte(r.Config), &cfg); err != nil {
		t.Fatalf("run %s config %q: %v", run, r.Config, err)
	}
	return cfg.Format
}

// TestEvalAndServeTakeFormatFromAdapter trains a chat-format adapter (with the
// chatml template, on FireAct trajectories) through `fireact finetune`, then
// checks that `fireact eval` (and `fireact run`) prompt with the chat format
// when no --format is given, that --format overrides it, that another base gets a warning naming
// the recorded one, and that `fireact serve` runs /v1/agent/run requests for
// the adapter in the chat format and serves chat completions with its
// template (the base has none, so without it they would fail).
func TestEvalAndServeTakeFormatFromAdapter(t *testing.T) {
	dir := t.TempDir()
	base, other := filepath.Join(dir, "base.gguf"), filepath.Join(dir, "other.gguf")
	usageModel(t, base, 1)
	usageModel(t, other, 2)
	rows, err := os.ReadFile("../../../shared/data/fireact/finetune/alpaca_format/hotpotqa.json")
	if err != nil {
		t.Fatal(err)
	}
	var all []json.RawMessage
	if err := json.Unmarshal(rows, &all); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "hotpotqa3.json")
	b, _ := json.Marshal(all[:3])
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "fireact.db")
	adapter := filepath.Join(dir, "chat.lora.gguf")
	if out, err := runFireact(t, "", "finetune", "--db", db, "--base", base, "--out", adapter, "--data", data,
		"--template", "chat", "--chat-template", "chatml", "--max-steps", "1", "--val", "0", "--cutoff", "256",
		"--rank", "2", "--threads", "1"); err != nil {
		t.Fatalf("finetune: %v\n%s", err, out)
	}

	eval := func(model, run string, extra ...string) string {
		t.Helper()
		args := append([]string{"eval", "--db", db, "--data-dir", "../../../shared/data/fireact", "--task", "hotpotqa",
			"--split", "dev", "--limit", "1", "-m", model, "--lora", adapter, "--search", "none", "--max-turns", "1",
			"--max-tokens", "4", "--threads", "1", "-j", "1", "--run", run}, extra...)
		out, err := runFireact(t, "", args...)
		if err != nil {
			t.Fatalf("eval %s: %v\n%s", run, err, out)
		}
		return out
	}
	out := eval(base, "from-adapter")
	if f := runFormat(t, db, "from-adapter"); f != "chat" {
		t.Errorf("eval without --format prompted with %q, want the adapter's chat", f)
	}
	if strings.Contains(out, "was trained on base") {
		t.Errorf("warning on the adapter's own base:\n%s", out)
	}
	eval(base, "flag", "--format", "alpaca")
	if f := runFormat(t, db, "flag"); f != "alpaca" {
		t.Errorf("eval --format alpaca prompted with %q", f)
	}
	out = eval(other, "other-base")
	if !strings.Contains(out, "warning: adapter "+adapter+" was trained on base base.gguf") {
		t.Errorf("no base-mismatch warning for another base; output:\n%s", out)
	}

	if out, err := runFireact(t, "", "run", "--db", db, "-m", base, "--lora", adapter, "--search", "none", "--max-turns", "1",
		"--max-tokens", "4", "--threads", "1", "--record", "one", "Who directed the film?"); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if f := runFormat(t, db, "one"); f != "chat" {
		t.Errorf("run without --format prompted with %q, want the adapter's chat", f)
	}

	// serve, on a free port, until the test cancels it.
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	app := newApp()
	var serveOut bytes.Buffer
	app.Writer, app.ErrWriter = io.Discard, &serveOut
	served := make(chan error, 1)
	go func() {
		served <- app.RunContext(ctx, []string{"fireact", "serve", "-m", base, "--lora", "chat=" + adapter,
			"--addr", addr, "--db", db, "--threads", "1", "--parallel", "1", "--ctx", "1024", "--max-tokens", "8", "--search", "none"})
	}()
	defer func() {
		cancel()
		select {
		case <-served:
		case <-time.After(time.Minute):
			t.Error("serve did not stop")
		}
	}()
	waitHealth(t, addr, served)
	post := func(path string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, err := http.Post("http://"+addr+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	code, body := post("/v1/agent/run", map[string]any{"model": "base+chat", "question": "Who directed the film?",
		"max_steps": 1, "run": "served", "tools": []string{"none"}})
	if code != http.StatusOK {
		t.Fatalf("/v1/agent/run: %d %s", code, body)
	}
	if f := runFormat(t, db, "served"); f != "chat" {
		t.Errorf("serve prompted the adapter with %q, want its chat format", f)
	}
	code, body = post("/v1/chat/completions", map[string]any{"model": "base+chat", "max_tokens": 2,
		"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	if code != http.StatusOK {
		t.Errorf("/v1/chat/completions with the adapter's template: %d %s", code, body)
	}
}

// waitHealth waits until a server answers /health at addr.
func waitHealth(t *testing.T, addr string, served <-chan error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-served:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(fmt.Sprintf("serve did not answer /health at %s", addr))
}
