package hf_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/hf/hftest"
	"github.com/fireact/fireact/llama/modelgen"
)

// smallCheckpoint writes a small checkpoint of arch (smollm3 or granite)
// with the 32k-token Mistral tokenizer, for the config tests.
func smallCheckpoint(t *testing.T, arch, hfArch string) string {
	t.Helper()
	c := hftest.Checkpoint{
		Arch: arch, HFArch: hfArch, Tokenizer: filepath.Join(tokenizers, "mistral-v0.1"),
		NEmbd: 32, NLayer: 4, NHead: 4, NHeadKV: 2, NFF: 64, Tied: true, Seed: 11,
	}
	if arch == "granite" {
		c.Granite = &modelgen.GraniteScales{EmbeddingMultiplier: 12, AttentionMultiplier: 0.015625, ResidualMultiplier: 0.22, LogitsScaling: 8}
	}
	_, dir := hftest.WriteCheckpoint(t, t.TempDir(), c)
	return dir
}

// TestConvertCheckpointSmolLM3GraniteConfig: the SmolLM3 and Granite
// config.json keys that llama.cpp would not reproduce are refused naming
// the key (another NoPE layer set, sliding windows, a zero multiplier, a
// head_dim of its own), attention biases llama.cpp's smollm3 does not load
// are refused by name, and a Granite config without its multipliers gets
// transformers' defaults written (llama.cpp needs all four keys).
func TestConvertCheckpointSmolLM3GraniteConfig(t *testing.T) {
	smol := smallCheckpoint(t, "smollm3", "SmolLM3ForCausalLM")
	granite := smallCheckpoint(t, "granite", "GraniteForCausalLM")
	for _, tc := range []struct {
		name  string
		base  string
		edit  func(m map[string]any)
		extra string // a tensor added to the checkpoint
		want  []string
	}{
		{"smollm3 NoPE on layer 1", smol, func(m map[string]any) { m["no_rope_layers"] = []int{1, 0, 1, 0} },
			"", []string{"config.json", "no_rope_layers[1] is 0", "RoPE"}},
		{"smollm3 interval 2", smol, func(m map[string]any) { delete(m, "no_rope_layers"); m["no_rope_layer_interval"] = 2 },
			"", []string{"config.json", "no_rope_layer_interval is 2"}},
		{"smollm3 short no_rope_layers", smol, func(m map[string]any) { m["no_rope_layers"] = []int{1, 1, 1} },
			"", []string{"no_rope_layers has 3 entries for 4 layers"}},
		{"smollm3 sliding window", smol, func(m map[string]any) { m["use_sliding_window"] = true },
			"", []string{"config.json", "use_sliding_window"}},
		{"smollm3 attention bias", smol, func(m map[string]any) { m["attention_bias"] = true },
			"model.layers.2.self_attn.q_proj.bias", []string{`"model.layers.2.self_attn.q_proj.bias"`, "no place in a llama.cpp smollm3 model"}},
		{"smollm3 rope scaling", smol, func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": 2.0} },
			"", []string{"config.json", `rope_scaling type "linear" is not supported for SmolLM3ForCausalLM`}},
		{"granite zero residual", granite, func(m map[string]any) { m["residual_multiplier"] = 0.0 },
			"", []string{"config.json", "residual_multiplier is 0"}},
		{"granite head_dim", granite, func(m map[string]any) { m["head_dim"] = 16 },
			"", []string{"config.json", "head_dim 16 is not hidden_size / num_attention_heads"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			copyDir(t, tc.base, dir)
			editJSON(t, filepath.Join(dir, hf.CheckpointConfigFile), tc.edit)
			if tc.extra != "" {
				rewriteShard(t, filepath.Join(dir, hf.CheckpointWeightsFile), func(ts []hf.TensorData) []hf.TensorData {
					return append(ts, hf.TensorData{Name: tc.extra, DType: hf.F32, Shape: []int64{32}, Data: gguf.EncodeF32(make([]float32, 32))})
				})
			}
			_, err := hf.ConvertCheckpoint(context.Background(), dir, filepath.Join(t.TempDir(), "out.gguf"), hf.CheckpointOptions{Type: "f32"})
			if err == nil {
				t.Fatal("converted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("granite defaults", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ckpt")
		copyDir(t, granite, dir)
		editJSON(t, filepath.Join(dir, hf.CheckpointConfigFile), func(m map[string]any) {
			for _, k := range []string{"embedding_multiplier", "attention_multiplier", "residual_multiplier", "logits_scaling"} {
				delete(m, k)
			}
		})
		out := filepath.Join(t.TempDir(), "out.gguf")
		if _, err := hf.ConvertCheckpoint(context.Background(), dir, out, hf.CheckpointOptions{Type: "f32"}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"granite.embedding_scale", "granite.attention.scale", "granite.residual_scale", "granite.logit_scale"} {
			if v, ok := f.Float(k); !ok || v != 1 {
				t.Errorf("%s = %v (present %v), want transformers' default 1", k, v, ok)
			}
		}
	})
}
