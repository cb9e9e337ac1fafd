package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/modelgen"
)

// TestLlama32FinetuneAndServe: a Llama-3.2-shaped model made in code (llama3
// RoPE scaling in rope_freqs.weight, output tied to token_embd) trains from
// the command line, and `fireact serve` with the adapter answers a
// completion with what the adapter learned, unlike the base.
func TestLlama32FinetuneAndServe(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "llama-3.2.gguf")
	err := modelgen.WriteLlama(base, modelgen.LlamaConfig{
		Name: "modelgen-llama-3.2", Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 1, NFF: 128, NCtx: 512, Seed: 3,
		RopeFreqBase: 500000, TiedOutput: true,
		RopeScaling: &modelgen.Llama3RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192},
	})
	if err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "text.txt")
	writeFile(t, text, strings.Repeat("the film was directed by ann and she was born in paris . ", 4))
	db := filepath.Join(dir, "fireact.db")
	out := filepath.Join(dir, "l3.lora.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := runLine(ctx, []string{"fireact", "finetune", "--db", db, "--base", base, "--text", text, "--out", out,
		"--targets", "all", "--rank", "8", "--lr", "0.01", "--max-steps", "60", "--val", "0", "--warmup", "0",
		"--threads", "1", "--backward", "transient"}); err != nil {
		t.Fatalf("fireact finetune: %v", err)
	}
	ad, err := gguf.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ad.Tensor("blk.0.attn_q.weight.lora_a"); !ok {
		t.Fatalf("%s has no blk.0.attn_q.weight.lora_a", out)
	}

	fx := &readmeFixtures{addr: freeAddr(t)}
	served := make(chan error, 1)
	go func() {
		served <- runLine(ctx, []string{"fireact", "serve", "-m", base, "--lora", "l3=" + out, "--addr", fx.addr,
			"--parallel", "1", "--ctx", "512", "--threads", "1", "--db", db})
	}()
	if err := fx.waitServing(ctx, served); err != nil {
		t.Fatal(err)
	}
	complete := func(model string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"model": model, "prompt": "the film was", "max_tokens": 24, "temperature": 0})
		resp, err := http.Post("http://"+fx.addr+"/v1/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d: %s", model, resp.StatusCode, raw)
		}
		var r struct {
			Model   string `json:"model"`
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(raw, &r); err != nil || len(r.Choices) != 1 {
			t.Fatalf("%s: answer %s: %v", model, raw, err)
		}
		return r.Choices[0].Text
	}
	tuned, plain := complete("llama-3.2+l3"), complete("llama-3.2")
	t.Logf("base+l3: %q; base: %q", tuned, plain)
	if !strings.Contains(tuned, "directed by ann") {
		t.Errorf("base+l3 completed %q, want the trained text (directed by ann ...)", tuned)
	}
	if tuned == plain {
		t.Errorf("the adapter changes nothing: both completed %q", tuned)
	}
	cancel()
	if err := <-served; err != nil && ctx.Err() == nil {
		t.Errorf("fireact serve: %v", err)
	}
}
