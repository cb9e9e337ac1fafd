package modelgen

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
)

// TestLlama3RopeFactors checks the factors of Llama-3.2-1B's configuration
// (head_dim 64, rope_theta 500000, factor 32, low 1, high 4, original context
// 8192) against the wavelength bounds worked out by hand: pair i has
// wavelength 2π·500000^(i/32), below 8192/4 = 2048 for i ≤ 14 (kept), above
// 8192 for i ≥ 18 (slowed 32×), and blended for i = 15, 16, 17.
func TestLlama3RopeFactors(t *testing.T) {
	s := Llama3RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 8192}
	f := Llama3RopeFactors(64, 500000, s)
	if len(f) != 32 {
		t.Fatalf("%d factors, want 32", len(f))
	}
	for i, v := range f {
		switch {
		case i <= 14 && v != 1:
			t.Errorf("factor[%d] = %g, want 1 (wavelength below 2048)", i, v)
		case i >= 18 && v != 32:
			t.Errorf("factor[%d] = %g, want 32 (wavelength above 8192)", i, v)
		case i >= 15 && i <= 17 && !(v > f[i-1] && v < 32):
			t.Errorf("factor[%d] = %g, want strictly between factor[%d] = %g and 32", i, v, i-1, f[i-1])
		}
	}
	// Pair 15: wavelength 2π·500000^(15/32) ≈ 2948.0, smooth = (8192/2948 - 1)/3.
	wave := 2 * math.Pi * math.Pow(500000, 15.0/32)
	smooth := (8192/wave - 1) / 3
	if want := 1 / ((1-smooth)/32 + smooth); math.Abs(float64(f[15])-want) > 1e-5 || math.Abs(want-1.651) > 1e-3 {
		t.Errorf("factor[15] = %g, want %g (≈ 1.651)", f[15], want)
	}
	// Hugging Face's defaults (Llama-3.1: factor 8) apply to zero fields.
	d := Llama3RopeFactors(128, 500000, Llama3RopeScaling{})
	if len(d) != 64 || d[0] != 1 || d[63] != 8 {
		t.Errorf("default scaling: %d factors, first %g, last %g; want 64, 1, 8", len(d), d[0], d[len(d)-1])
	}
}

// TestWriteLlamaRopeScaling: the model carries rope_freqs.weight with exactly
// the factors, and no key beyond an unscaled model's; invalid settings are
// refused before a file is written.
func TestWriteLlamaRopeScaling(t *testing.T) {
	dir := t.TempDir()
	cfg := tinyConfig()
	cfg.RopeFreqBase = 500000
	cfg.RopeScaling = &Llama3RopeScaling{Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 64}
	path := filepath.Join(dir, "l3.gguf")
	if err := WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	f := readFile(t, path)
	ti, ok := f.Tensor("rope_freqs.weight")
	if !ok {
		t.Fatal("no rope_freqs.weight")
	}
	if len(ti.Shape) != 1 || ti.Shape[0] != 8 {
		t.Fatalf("rope_freqs.weight shape %v, want [8] (head size 16 / 2)", ti.Shape)
	}
	want := Llama3RopeFactors(16, 500000, *cfg.RopeScaling)
	got := readTensor(t, f, "rope_freqs.weight")
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("rope_freqs.weight[%d] = %g, want %g", i, got[i], want[i])
		}
	}
	plain := tinyConfig()
	plainPath := filepath.Join(dir, "plain.gguf")
	if err := WriteLlama(plainPath, plain); err != nil {
		t.Fatal(err)
	}
	pf := readFile(t, plainPath)
	if _, ok := pf.Tensor("rope_freqs.weight"); ok {
		t.Fatal("an unscaled model has rope_freqs.weight")
	}
	if len(f.KVs) != len(pf.KVs) || len(f.Tensors) != len(pf.Tensors)+1 {
		t.Fatalf("scaled model: %d keys, %d tensors; unscaled %d, %d (want the same keys, one more tensor)",
			len(f.KVs), len(f.Tensors), len(pf.KVs), len(pf.Tensors))
	}
	if p := cfg.Params(); p != plain.Params()+8 {
		t.Fatalf("Params() = %d, want %d + 8", p, plain.Params())
	}

	bad := map[string]LlamaConfig{}
	q := cfg
	q.Arch = "qwen2"
	bad["qwen2"] = q
	for name, s := range map[string]Llama3RopeScaling{
		"low == high": {LowFreqFactor: 4, HighFreqFactor: 4},
		"neg factor":  {Factor: -2},
		"neg context": {OriginalContext: -1},
		"high < low":  {LowFreqFactor: 2, HighFreqFactor: 1},
		"nan factor":  {Factor: math.NaN()},
	} {
		c := cfg
		c.RopeScaling = &s
		bad[name] = c
	}
	for name, c := range bad {
		d := t.TempDir()
		if err := WriteLlama(filepath.Join(d, "m.gguf"), c); err == nil {
			t.Errorf("%s: no error", name)
		}
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("%s: left files behind", name)
		}
	}
}

func readFile(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
