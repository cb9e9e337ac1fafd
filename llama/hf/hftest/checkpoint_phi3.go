package hftest

import (
	"fmt"
	"strings"

	"github.com/fireact/fireact/llama/modelgen"
)

// phi3HFNames maps the GGUF tensors of a phi3 block (after "blk.N.") to
// Phi3ForCausalLM's modules (after "model.layers.N."), written out apart
// from the converter's rules so that a wrong entry in one shows up.
var phi3HFNames = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"attn_qkv.weight":    "self_attn.qkv_proj.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"ffn_up.weight":      "mlp.gate_up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

// phi3HFName returns the Phi3ForCausalLM name of a phi3 GGUF tensor.
func phi3HFName(name string) (string, bool) {
	var l int
	if n, _ := fmt.Sscanf(name, "blk.%d.", &l); n != 1 {
		return HFName(name) // token_embd, output_norm, output: as llama's
	}
	h, ok := phi3HFNames[strings.TrimPrefix(name, fmt.Sprintf("blk.%d.", l))]
	return fmt.Sprintf("model.layers.%d.%s", l, h), ok
}

// phi3MaxPositions is the phi3 cases' max_position_embeddings: four times
// the original context with LongRoPE (the attention factor is then > 1), as
// Phi-3.5/4-mini's 131072 is 32 × 4096.
func (c Checkpoint) phi3MaxPositions() int {
	if c.LongRoPE != nil {
		return 4 * c.LongRoPE.OriginalContext
	}
	return 512
}

// phi3Model is the reference phi3 model of c with vocabulary v.
func (c Checkpoint) phi3Model(v modelgen.Vocab) modelgen.Phi3Config {
	return modelgen.Phi3Config{
		Vocab: v, NEmbd: c.NEmbd, NLayer: c.NLayer, NHead: c.NHead, NHeadKV: c.NHeadKV, NFF: c.NFF,
		NCtx: c.phi3MaxPositions(), PartialRotary: c.PartialRotary, RopeFreqBase: 10000, RMSEps: 1e-5,
		TiedOutput: c.Tied, LongRoPE: c.LongRoPE, SlidingWindow: 262144, Seed: c.Seed,
	}
}

// phi3Config sets the config.json keys of Phi-3.5-mini-instruct's and
// Phi-4-mini-instruct's configs (LongRoPE as rope_scaling longrope).
func (c Checkpoint) phi3Config(m map[string]any) {
	m["model_type"] = "phi3"
	m["attention_bias"] = false
	m["embd_pdrop"] = 0.0
	m["resid_pdrop"] = 0.0
	m["sliding_window"] = 262144
	m["max_position_embeddings"] = c.phi3MaxPositions()
	m["original_max_position_embeddings"] = c.phi3MaxPositions()
	if c.PartialRotary != 0 {
		m["partial_rotary_factor"] = c.PartialRotary
	}
	if r := c.LongRoPE; r != nil {
		m["original_max_position_embeddings"] = r.OriginalContext
		wide := func(x []float32) []float64 {
			out := make([]float64, len(x))
			for i, v := range x {
				out[i] = float64(v) // printed exactly: the converter's float32 is v again
			}
			return out
		}
		m["rope_scaling"] = map[string]any{"type": "longrope", "long_factor": wide(r.Long), "short_factor": wide(r.Short)}
	}
}
