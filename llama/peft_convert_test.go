package llama

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/hf/hftest"
)

// loadModelT loads a model for the test and closes it at the end.
func loadModelT(t *testing.T, path string) *Model {
	t.Helper()
	m, err := LoadModel(path, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// textLogits returns the last position's logits of text, with adapter (if
// not nil) attached at scale 1.
func textLogits(t *testing.T, m *Model, adapter *Adapter, text string) []float32 {
	t.Helper()
	c, err := m.NewContext(ContextOptions{NCtx: 256, TypeK: "f32", TypeV: "f32", FlashAttn: FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if adapter != nil {
		if err := c.SetAdapter(adapter, 1); err != nil {
			t.Fatal(err)
		}
		defer c.ClearAdapters()
	}
	toks, err := m.Tokenize(text, TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), lastLogits(t, c, toks)...)
}

// TestPEFTToGGUFMatchesMergedCheckpoint is the proof the issue asks for: a
// GGUF base with the converted PEFT adapter gives the logits of the HF
// checkpoint with the adapter merged (W + s·B·A) and then converted, for
// q, k, v, o and MLP targets, on a permuted (llama, GQA) and an unpermuted
// (qwen2) architecture, with plain and rsLoRA scaling, and with layer 1 at a
// different rank (rank_pattern), where one alpha cannot express both scales.
func TestPEFTToGGUFMatchesMergedCheckpoint(t *testing.T) {
	const r = 4
	const text = "Question: who directed the film? Thought: I need to search"
	for _, tc := range []struct {
		name    string
		arch    string
		alpha   float64
		rslora  bool
		rank1   int // rank of layer 1's targets
		permute bool
	}{
		{"llama", "llama", 8, false, r, true},
		{"qwen2-rslora", "qwen2", 8, true, r, false},
		{"llama-rslora-rank-pattern", "llama", 8, true, 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			basePath, base := hftest.WriteBase(t, dir, tc.arch)
			targets := hftest.Targets(t, base, r, 3)
			cfg := hftest.Config(r, tc.alpha, tc.rslora)
			if tc.rank1 != r {
				pattern := map[string]any{}
				for i, x := range hftest.Targets(t, base, tc.rank1, 4) {
					if strings.HasPrefix(x.Module, "model.layers.1.") {
						targets[i] = x
						pattern[x.Module] = tc.rank1
					}
				}
				cfg["rank_pattern"] = pattern
			}
			peftDir := filepath.Join(dir, "peft")
			hftest.WritePEFT(t, peftDir, targets, cfg)
			scale := func(r int) float64 {
				if tc.rslora {
					return tc.alpha / math.Sqrt(float64(r))
				}
				return tc.alpha / float64(r)
			}
			adapterPath := filepath.Join(dir, "adapter.gguf")
			conv, err := hf.PEFTToGGUF(context.Background(), peftDir, base, adapterPath)
			if err != nil {
				t.Fatal(err)
			}
			if len(conv.Targets) != len(targets) {
				t.Fatalf("converted %d targets, want %d", len(conv.Targets), len(targets))
			}
			wantPerm := 0
			if tc.permute {
				wantPerm = 4 // q and k of 2 layers
			}
			if len(conv.Permuted) != wantPerm {
				t.Fatalf("permuted %v on %s, want %d tensors (q and k of each layer on llama only)", conv.Permuted, tc.arch, wantPerm)
			}
			mergedPath := filepath.Join(dir, "merged.gguf")
			hftest.WriteMergedReference(t, base, mergedPath, targets, scale, tc.permute)

			bm := loadModelT(t, basePath)
			ad, err := bm.LoadAdapter(adapterPath)
			if err != nil {
				t.Fatal(err)
			}
			defer ad.Close()
			plain := textLogits(t, bm, nil, text)
			withAdapter := textLogits(t, bm, ad, text)
			want := textLogits(t, loadModelT(t, mergedPath), nil, text)
			if d := maxAbsDiff(plain, want); d < 0.05 {
				t.Fatalf("the adapter barely changes the logits (%g): the test would prove nothing", d)
			}
			// F32 throughout: only summation order differs.
			if d := maxAbsDiff(withAdapter, want); d > 2e-3 {
				t.Fatalf("base+converted adapter differs from the merged checkpoint by %g (base differs by %g)", d, maxAbsDiff(plain, want))
			}
		})
	}
}
