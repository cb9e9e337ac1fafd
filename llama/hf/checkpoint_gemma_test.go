package hf_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/hf"
)

// gemmaConfigJSON is a Gemma-3-1B-shaped config.json (Gemma3TextConfig's
// keys, small sizes) with changes applied; a nil value deletes the key.
func gemmaConfigJSON(t *testing.T, arch string, changes map[string]any) string {
	t.Helper()
	m := map[string]any{
		"architectures": []string{arch}, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 6,
		"num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 1000,
		"max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
		"hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 32, "sliding_window": 512,
		"sliding_window_pattern": 6, "final_logit_softcapping": nil, "attn_logit_softcapping": nil,
	}
	if arch == "Gemma2ForCausalLM" {
		m["num_hidden_layers"] = 2
		m["rope_theta"] = 10000.0
		m["attn_logit_softcapping"], m["final_logit_softcapping"] = 50.0, 30.0
		delete(m, "rope_local_base_freq")
		delete(m, "sliding_window_pattern")
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	dir := t.TempDir()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestGemmaConfigRejects: what llama.cpp's gemma2/gemma3 would compute
// differently from transformers (it hard-codes these instead of reading
// keys) is refused, naming the field; the defaults are taken as
// transformers takes them.
func TestGemmaConfigRejects(t *testing.T) {
	ok, err := hf.ReadCheckpointConfig(gemmaConfigJSON(t, "Gemma3ForCausalLM", map[string]any{"tie_word_embeddings": nil}))
	if err != nil {
		t.Fatal(err)
	}
	if !ok.TieWordEmbeddings || ok.Gemma == nil || ok.Gemma.SlidingWindow != 512 || ok.Gemma.FinalSoftcap != 0 {
		t.Fatalf("gemma3 config read as tied %v, %+v", ok.TieWordEmbeddings, ok.Gemma)
	}
	types := func(pattern ...string) []string { return pattern }
	for _, c := range []struct {
		name, arch string
		changes    map[string]any
		want       string
	}{
		{"vision-language", "Gemma3ForConditionalGeneration", nil, "language_model"},
		{"activation", "Gemma3ForCausalLM", map[string]any{"hidden_activation": "gelu"}, "hidden_activation"},
		{"no head_dim", "Gemma3ForCausalLM", map[string]any{"head_dim": nil, "hidden_size": 128}, "head_dim"},
		{"attention scale", "Gemma3ForCausalLM", map[string]any{"query_pre_attn_scalar": 64}, "query_pre_attn_scalar"},
		{"attention scale default", "Gemma3ForCausalLM", map[string]any{"query_pre_attn_scalar": nil}, "query_pre_attn_scalar is 256"},
		{"local rope base", "Gemma3ForCausalLM", map[string]any{"rope_local_base_freq": 20000.0}, "rope_local_base_freq"},
		{"pattern", "Gemma3ForCausalLM", map[string]any{"sliding_window_pattern": 4}, "sliding_window_pattern"},
		{"layer types", "Gemma3ForCausalLM", map[string]any{"layer_types": types("sliding_attention", "full_attention", "sliding_attention",
			"sliding_attention", "sliding_attention", "full_attention")}, "layer_types[1]"},
		{"gemma3 attention cap", "Gemma3ForCausalLM", map[string]any{"attn_logit_softcapping": 50.0}, "attn_logit_softcapping"},
		{"rope_parameters", "Gemma3ForCausalLM", map[string]any{"rope_parameters": map[string]any{"full_attention": map[string]any{"rope_theta": 1e6}}}, "rope_parameters"},
		{"gemma2 untied", "Gemma2ForCausalLM", map[string]any{"tie_word_embeddings": false}, "tie_word_embeddings"},
		{"gemma2 no cap", "Gemma2ForCausalLM", map[string]any{"final_logit_softcapping": nil}, "final_logit_softcapping"},
		{"gemma2 rope base", "Gemma2ForCausalLM", map[string]any{"rope_theta": 500000.0}, "rope_theta"},
		{"gemma2 no window", "Gemma2ForCausalLM", map[string]any{"sliding_window": nil}, "sliding_window"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := hf.ReadCheckpointConfig(gemmaConfigJSON(t, c.arch, c.changes))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "config.json") {
				t.Fatalf("err = %v, want one naming config.json and %q", err, c.want)
			}
		})
	}
}
