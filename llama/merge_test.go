package llama

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// TestMergeMatchesBasePlusAdapters merges two adapters (scales 1 and 0.5,
// every projection) into an F32 base and checks, for each output type, that
// the merged model's logits match base+adapters applied at run time within
// the tolerance the type allows. The logits of these models span about ±5.
func TestMergeMatchesBasePlusAdapters(t *testing.T) {
	dir := t.TempDir()
	basePath, m := tinyModel(t, dir, 21)
	var loras []MergeLoRA
	for i, scale := range []float32{1, 0.5} {
		p := filepath.Join(dir, "lora"+string(rune('a'+i))+".gguf")
		cfg := modelgen.LoRAConfig{Targets: modelgen.AllTargets(m.File()), Rank: 4 + 4*i, Alpha: 8, Seed: uint64(30 + i)}
		if err := modelgen.WriteLoRA(p, m.File(), cfg); err != nil {
			t.Fatal(err)
		}
		loras = append(loras, MergeLoRA{Path: p, Scale: scale})
	}
	const text = "Question: which magazine was started first? Thought: I need to search"
	toks, err := m.Tokenize(text, TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext(ContextOptions{NCtx: 256, TypeK: "f32", TypeV: "f32", FlashAttn: FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	plain := append([]float32(nil), lastLogits(t, c, toks)...)
	for _, l := range loras {
		a, err := m.LoadAdapter(l.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := c.SetAdapter(a, l.Scale); err != nil {
			t.Fatal(err)
		}
	}
	want := append([]float32(nil), lastLogits(t, c, toks)...)
	if err := c.ClearAdapters(); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(plain, want); d < 0.5 {
		t.Fatalf("the adapters change the logits by only %g: the test would prove nothing", d)
	}

	// The tolerance of a type is stated against what that type costs anyway:
	// merged-and-quantized may differ from base+adapters by at most twice the
	// error of quantizing the base alone to the same type (plus float noise),
	// and never by more than the absolute bound listed. Measured on this
	// model: f32 2e-6, f16 0.006, q8_0 0.08, q4_k_m 1.0.
	for _, tc := range []struct {
		typ string
		abs float64
	}{
		{"f32", 1e-4},
		{"f16", 2e-2},
		{"q8_0", 0.25},
		{"q4_k_m", 2.5}, // tiny rows (64) fall back to Q5_0/Q8_0-class types
	} {
		t.Run(tc.typ, func(t *testing.T) {
			tmp := t.TempDir()
			out := filepath.Join(tmp, "merged.gguf")
			if err := Merge(context.Background(), basePath, loras, out, MergeOptions{Type: tc.typ, Threads: 2}); err != nil {
				t.Fatal(err)
			}
			qbase := filepath.Join(tmp, "base.gguf")
			if err := Quantize(basePath, qbase, tc.typ, 2); err != nil {
				t.Fatal(err)
			}
			got := modelLogits(t, out, toks)
			quantErr := maxAbsDiff(modelLogits(t, qbase, toks), plain)
			d := maxAbsDiff(got, want)
			t.Logf("%s: max |merged - base+adapters| = %.3g; quantizing the base alone: %.3g; the adapters move logits by %.3g",
				tc.typ, d, quantErr, maxAbsDiff(plain, want))
			if tol := min(tc.abs, 2*quantErr+1e-4); d > tol {
				t.Fatalf("%s: merged model differs from base+adapters by %g, tolerance %g", tc.typ, d, tol)
			}
		})
	}
}

// modelLogits loads the model at path and returns the last logits of toks.
func modelLogits(t *testing.T, path string, toks []Token) []float32 {
	t.Helper()
	m, err := LoadModel(path, ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(ContextOptions{NCtx: 256, TypeK: "f32", TypeV: "f32", FlashAttn: FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return append([]float32(nil), lastLogits(t, c, toks)...)
}

// TestMergeRejects covers inputs Merge must refuse with a clear error.
func TestMergeRejects(t *testing.T) {
	dir := t.TempDir()
	basePath, m := tinyModel(t, dir, 22)
	lora := filepath.Join(dir, "lora.gguf")
	writeAdapter(t, m, lora, false, 1)
	out := filepath.Join(dir, "out.gguf")
	for _, tc := range []struct {
		name  string
		base  string
		loras []MergeLoRA
		typ   string
		want  string
	}{
		{"no adapters", basePath, nil, "", "no adapters"},
		{"bad type", basePath, []MergeLoRA{{lora, 1}}, "q9_9", "unknown type"},
		{"adapter as base", lora, []MergeLoRA{{lora, 1}}, "", "is an adapter"},
		{"model as adapter", basePath, []MergeLoRA{{basePath, 1}}, "", "general.type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Merge(context.Background(), tc.base, tc.loras, out, MergeOptions{Type: tc.typ})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
