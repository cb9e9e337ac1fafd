package hftest

import (
	"fmt"
	"strings"

	"github.com/fireact/fireact/llama/modelgen"
)

// gemmaHFNames maps GGUF tensor names of a Gemma block (after "blk.N.") to
// HF module names (after "model.layers.N."), written out apart from the
// converter's table. Gemma's four norms are where the llama family's two
// names differ: post_attention_layernorm follows the attention here.
var gemmaHFNames = map[string]string{
	"attn_norm.weight":           "input_layernorm.weight",
	"attn_q.weight":              "self_attn.q_proj.weight",
	"attn_k.weight":              "self_attn.k_proj.weight",
	"attn_v.weight":              "self_attn.v_proj.weight",
	"attn_q_norm.weight":         "self_attn.q_norm.weight",
	"attn_k_norm.weight":         "self_attn.k_norm.weight",
	"attn_output.weight":         "self_attn.o_proj.weight",
	"post_attention_norm.weight": "post_attention_layernorm.weight",
	"ffn_norm.weight":            "pre_feedforward_layernorm.weight",
	"ffn_gate.weight":            "mlp.gate_proj.weight",
	"ffn_up.weight":              "mlp.up_proj.weight",
	"ffn_down.weight":            "mlp.down_proj.weight",
	"post_ffw_norm.weight":       "post_feedforward_layernorm.weight",
}

func isGemma(arch string) bool { return arch == "gemma2" || arch == "gemma3" }

// hfNameFor returns the Hugging Face name of a GGUF tensor of arch.
func hfNameFor(arch, name string) (string, bool) {
	if arch == "phi3" {
		return phi3HFName(name)
	}
	if !isGemma(arch) {
		return HFName(name)
	}
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight", true
	case "output_norm.weight":
		return "model.norm.weight", true
	}
	var l int
	if n, _ := fmt.Sscanf(name, "blk.%d.", &l); n != 1 {
		return "", false
	}
	h, ok := gemmaHFNames[strings.TrimPrefix(name, fmt.Sprintf("blk.%d.", l))]
	if !ok {
		return "", false
	}
	return fmt.Sprintf("model.layers.%d.%s", l, h), true
}

// gemmaModel is the modelgen configuration of a Gemma case.
// A linear rope_scaling becomes modelgen's RopeScaleLinear.
func (c Checkpoint) gemmaModel(v modelgen.Vocab) modelgen.GemmaConfig {
	g := modelgen.GemmaConfig{
		Arch: c.Arch, Vocab: v, NEmbd: c.NEmbd, NLayer: c.NLayer, NHead: c.NHead, NHeadKV: c.NHeadKV, HeadDim: c.HeadDim,
		NFF: c.NFF, NCtx: 512, SlidingWindow: c.SlidingWindow, AttnSoftcap: float32(c.AttnSoftcap),
		FinalSoftcap: float32(c.FinalSoftcap), RMSEps: 1e-6, Seed: c.Seed,
	}
	if c.RopeScaling != nil && c.RopeScaling["rope_type"] == "linear" {
		g.RopeScaleLinear = float32(c.RopeScaling["factor"].(float64))
	}
	return g
}

// gemmaConfig sets the config.json keys transformers writes for
// Gemma2Config and Gemma3TextConfig.
func (c Checkpoint) gemmaConfig(m map[string]any) {
	delete(m, "hidden_act")
	m["hidden_activation"] = "gelu_pytorch_tanh"
	m["head_dim"] = c.HeadDim
	m["query_pre_attn_scalar"] = c.HeadDim
	m["rms_norm_eps"] = 1e-6
	m["sliding_window"] = c.SlidingWindow
	m["final_logit_softcapping"] = nil
	if c.FinalSoftcap != 0 {
		m["final_logit_softcapping"] = c.FinalSoftcap
	}
	m["attention_bias"] = false
	switch c.Arch {
	case "gemma2":
		m["model_type"] = "gemma2"
		m["attn_logit_softcapping"] = c.AttnSoftcap
		m["cache_implementation"] = "hybrid"
	case "gemma3":
		m["model_type"] = "gemma3_text"
		m["attn_logit_softcapping"] = nil
		m["rope_theta"] = 1000000.0
		m["rope_local_base_freq"] = 10000.0
		m["sliding_window_pattern"] = 6
		types := make([]string, c.NLayer)
		for i := range types {
			types[i] = "full_attention"
			if i%6 < 5 {
				types[i] = "sliding_attention"
			}
		}
		m["layer_types"] = types
	}
}
