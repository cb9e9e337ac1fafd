package hf_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/hf/hftest"
	"github.com/fireact/fireact/llama/modelgen"
)

// TestConvertPhi3Rejects: a Phi3ForCausalLM checkpoint the script could not
// convert, or one with a tensor llama.cpp's phi3 has no place for, is
// refused with the field or tensor named, and nothing is written.
func TestConvertPhi3Rejects(t *testing.T) {
	_, base := hftest.WriteCheckpoint(t, t.TempDir(), hftest.Checkpoint{
		Arch: "phi3", HFArch: "Phi3ForCausalLM", Tokenizer: filepath.Join(tokenizers, "mistral-v0.1"),
		NEmbd: 32, NLayer: 1, NHead: 4, NHeadKV: 2, NFF: 64, Seed: 10, PartialRotary: 0.5,
		LongRoPE: &modelgen.LongRoPE{OriginalContext: 64, Long: []float32{1, 4}, Short: []float32{1, 1.1}},
	})
	config := func(fn func(map[string]any)) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) { editJSON(t, filepath.Join(dir, "config.json"), fn) }
	}
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string
	}{
		{"no original context", config(func(m map[string]any) { delete(m, "original_max_position_embeddings") }),
			[]string{"config.json", "original_max_position_embeddings"}},
		{"no rope_theta", config(func(m map[string]any) { delete(m, "rope_theta") }), []string{"config.json", "rope_theta"}},
		{"factor count", config(func(m map[string]any) {
			m["rope_scaling"].(map[string]any)["long_factor"] = []float64{1, 2, 3}
		}), []string{"config.json", "3 long_factor", "want 2"}},
		{"no short factor", config(func(m map[string]any) { delete(m["rope_scaling"].(map[string]any), "short_factor") }),
			[]string{"config.json", "short_factor"}},
		{"linear scaling", config(func(m map[string]any) { m["rope_scaling"] = map[string]any{"type": "linear", "factor": 2.0} }),
			[]string{"config.json", `"linear"`, "Phi3ForCausalLM"}},
		{"partial rotary", config(func(m map[string]any) { m["partial_rotary_factor"] = 0.1 }), []string{"config.json", "partial_rotary_factor"}},
		{"qkv bias", func(t *testing.T, dir string) {
			rewriteShard(t, filepath.Join(dir, hf.CheckpointWeightsFile), func(ts []hf.TensorData) []hf.TensorData {
				return append(ts, hf.TensorData{Name: "model.layers.0.self_attn.qkv_proj.bias", DType: hf.F32, Shape: []int64{64}, Data: make([]byte, 256)})
			})
		}, []string{"model.safetensors", "model.layers.0.self_attn.qkv_proj.bias", "phi3"}},
		{"gate_up shape", func(t *testing.T, dir string) {
			rewriteShard(t, filepath.Join(dir, hf.CheckpointWeightsFile), func(ts []hf.TensorData) []hf.TensorData {
				for i, x := range ts {
					if x.Name == "model.layers.0.mlp.gate_up_proj.weight" {
						ts[i] = hf.TensorData{Name: x.Name, DType: x.DType, Shape: []int64{64, 32}, Data: x.Data[:64*32*4]}
					}
				}
				return ts
			})
		}, []string{"model.layers.0.mlp.gate_up_proj.weight", "[128 32]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "hf")
			copyDir(t, base, dir)
			tc.break_(t, dir)
			out := filepath.Join(t.TempDir(), "out.gguf")
			_, err := hf.ConvertCheckpoint(context.Background(), dir, out, hf.CheckpointOptions{Type: "f32"})
			if err == nil {
				t.Fatal("converted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(out); serr == nil {
				t.Errorf("%s was written", out)
			}
		})
	}
}
