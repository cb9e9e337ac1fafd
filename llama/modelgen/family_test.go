package modelgen

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
)

// TestSmolLM3NoRopeLayers: layers 3, 7, ... are NoPE, as llama.cpp's
// smollm3 and transformers' default no_rope_layers have it.
func TestSmolLM3NoRopeLayers(t *testing.T) {
	if got, want := SmolLM3NoRopeLayers(9), []int{1, 1, 1, 0, 1, 1, 1, 0, 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("SmolLM3NoRopeLayers(9) = %v, want %v", got, want)
	}
}

// TestWriteGranite: arch granite writes its four multipliers under
// llama.cpp's keys, and is refused without them, with a zero one, or with
// multipliers on another arch.
func TestWriteGranite(t *testing.T) {
	s := GraniteScales{EmbeddingMultiplier: 12, AttentionMultiplier: 0.015625, ResidualMultiplier: 0.22, LogitsScaling: 8}
	c := tinyConfig()
	c.Arch, c.Granite = "granite", &s
	path := filepath.Join(t.TempDir(), "g.gguf")
	if err := WriteLlama(path, c); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float32{"granite.embedding_scale": 12, "granite.attention.scale": 0.015625,
		"granite.residual_scale": 0.22, "granite.logit_scale": 8} {
		if v, ok := f.Get(k); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	zero := s
	zero.LogitsScaling = 0
	for name, tc := range map[string]struct {
		arch string
		g    *GraniteScales
		want string
	}{
		"no multipliers": {"granite", nil, "needs its four multipliers"},
		"zero logits":    {"granite", &zero, "LogitsScaling is 0"},
		"on llama":       {"llama", &s, "need arch granite"},
	} {
		c := tinyConfig()
		c.Arch, c.Granite = tc.arch, tc.g
		if err := WriteLlama(filepath.Join(t.TempDir(), "x.gguf"), c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}
