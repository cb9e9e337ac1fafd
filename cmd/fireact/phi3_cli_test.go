package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/modelgen"
)

// TestPhi3FinetuneCLI: a Phi-4-mini-shaped model made in code (fused QKV
// and gate-up, partial rotary, LongRoPE, tied output) trains from the
// command line with the recipe's targets, which become qkv on the fused
// model, at --serve-ctx above its original context: the adapter adapts
// attn_qkv and records the long table.
func TestPhi3FinetuneCLI(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "phi-4-mini.gguf")
	err := modelgen.WritePhi3(base, modelgen.Phi3Config{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()), NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtx: 1024,
		PartialRotary: 0.75, TiedOutput: true, Seed: 3,
		LongRoPE: &modelgen.LongRoPE{OriginalContext: 256, Long: []float32{1, 2, 4, 8, 12, 16}, Short: []float32{1, 1, 1.1, 1.1, 1.2, 1.2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "text.txt")
	writeFile(t, text, strings.Repeat("the film was directed by ann and she was born in paris . ", 4))
	out := filepath.Join(dir, "phi.lora.gguf")
	if err := runLine(context.Background(), []string{"fireact", "finetune", "--db", filepath.Join(dir, "fireact.db"), "--base", base,
		"--text", text, "--out", out, "--rank", "4", "--lr", "0.01", "--max-steps", "10", "--val", "0", "--warmup", "0",
		"--threads", "1", "--serve-ctx", "512"}); err != nil {
		t.Fatalf("fireact finetune: %v", err)
	}
	ad, err := gguf.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"blk.0.attn_qkv.weight.lora_a", "blk.1.attn_qkv.weight.lora_b"} {
		if _, ok := ad.Tensor(name); !ok {
			t.Errorf("%s has no %s", out, name)
		}
	}
	if len(ad.Tensors) != 4 {
		t.Errorf("%s has %d tensors, want A and B of attn_qkv in 2 layers", out, len(ad.Tensors))
	}
	if v, _ := ad.Get("fireact.rope_factors"); v != "long" {
		t.Errorf("fireact.rope_factors = %v, want long (served at 512 > original 256)", v)
	}
}
