package hf

import (
	"fmt"
	"math"

	"github.com/fireact/fireact/llama/gguf"
)

// Phi3ForCausalLM (Phi-3.5-mini, Phi-4-mini) as convert_hf_to_gguf.py's
// Phi3MiniModel converts it: the fused qkv_proj and gate_up_proj are kept
// fused (attn_qkv, and ffn_up with the gate rows first, which llama.cpp's
// SwiGLU splits the same way), with no Q/K permutation since phi3 uses NEOX
// RoPE, HF's rotate_half layout; partial_rotary_factor gives
// rope.dimension_count; LongRoPE's factor lists become the tensors
// rope_factors_long/short.weight and the attention factor a key.

// phi3RotaryDims is the script's rope_dims: int(partial_rotary_factor ·
// hidden_size) // num_attention_heads, the factor 1 when absent.
func phi3RotaryDims(cfg *CheckpointConfig) int {
	pct := cfg.PartialRotary
	if pct == 0 {
		pct = 1
	}
	return int(pct*float64(cfg.HiddenSize)) / cfg.NumHeads
}

// checkPhi3Config checks what the script requires of a Phi-3 config.json
// (find_hparam fails on a missing key) and what llama.cpp's phi3 needs.
func checkPhi3Config(c *CheckpointConfig) error {
	if c.OriginalMaxPositions <= 0 {
		return fmt.Errorf("original_max_position_embeddings is missing or not positive (Phi3ForCausalLM writes it as rope.scaling.original_context_length)")
	}
	if c.RopeTheta == 0 {
		return fmt.Errorf("rope_theta is missing (Phi3ForCausalLM needs it)")
	}
	if c.HeadDim*c.NumHeads != c.HiddenSize {
		return fmt.Errorf("head_dim %d × num_attention_heads %d is not hidden_size %d, which llama.cpp's phi3 assumes", c.HeadDim, c.NumHeads, c.HiddenSize)
	}
	if c.PartialRotary < 0 || c.PartialRotary > 1 {
		return fmt.Errorf("partial_rotary_factor %g is outside (0, 1]", c.PartialRotary)
	}
	dims := phi3RotaryDims(c)
	if dims <= 0 || dims%2 != 0 {
		return fmt.Errorf("partial_rotary_factor %g gives %d rotary dimensions per head, want a positive even number", c.PartialRotary, dims)
	}
	if rs := c.RopeScaling; rs != nil {
		if rs.LongFactor == nil || rs.ShortFactor == nil {
			return fmt.Errorf("rope_scaling %s needs long_factor and short_factor", rs.RopeType)
		}
		if len(rs.LongFactor) != dims/2 || len(rs.ShortFactor) != dims/2 {
			return fmt.Errorf("rope_scaling has %d long_factor and %d short_factor entries, want %d each (rotary dimensions / 2)",
				len(rs.LongFactor), len(rs.ShortFactor), dims/2)
		}
	}
	return nil
}

// phi3Rules are the tensors of a Phi3ForCausalLM checkpoint (HF shapes).
func phi3Rules(cfg *CheckpointConfig) []tensorRule {
	h, ff, v := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.VocabSize)
	q, kv := int64(cfg.NumHeads*cfg.HeadDim), int64(cfg.NumKVHeads*cfg.HeadDim)
	rules := []tensorRule{{hf: "model.embed_tokens.weight", gguf: "token_embd.weight", shape: []int64{v, h}}}
	for l := 0; l < cfg.NumLayers; l++ {
		p, g := fmt.Sprintf("model.layers.%d.", l), fmt.Sprintf("blk.%d.", l)
		rules = append(rules,
			tensorRule{hf: p + "input_layernorm.weight", gguf: g + "attn_norm.weight", shape: []int64{h}},
			tensorRule{hf: p + "self_attn.qkv_proj.weight", gguf: g + "attn_qkv.weight", shape: []int64{q + 2*kv, h}},
			tensorRule{hf: p + "self_attn.o_proj.weight", gguf: g + "attn_output.weight", shape: []int64{h, q}},
			tensorRule{hf: p + "post_attention_layernorm.weight", gguf: g + "ffn_norm.weight", shape: []int64{h}},
			tensorRule{hf: p + "mlp.gate_up_proj.weight", gguf: g + "ffn_up.weight", shape: []int64{2 * ff, h}},
			tensorRule{hf: p + "mlp.down_proj.weight", gguf: g + "ffn_down.weight", shape: []int64{h, ff}},
		)
	}
	return append(rules,
		tensorRule{hf: "model.norm.weight", gguf: "output_norm.weight", shape: []int64{h}},
		tensorRule{hf: "lm_head.weight", gguf: "output.weight", shape: []int64{v, h}, optional: cfg.TieWordEmbeddings},
	)
}

// phi3RopeFactors returns the LongRoPE tables as generated F32 tensors
// (torch.tensor(factors, dtype=float32): each number rounded once), or nil
// without rope_scaling.
func phi3RopeFactors(cfg *CheckpointConfig) []ckptTensor {
	rs := cfg.RopeScaling
	if checkpointArchs[cfg.Architecture].gguf != "phi3" || rs == nil {
		return nil
	}
	table := func(name string, x []float64) ckptTensor {
		f := make([]float32, len(x))
		for i, v := range x {
			f[i] = float32(v)
		}
		return ckptTensor{name: name, shape: []uint64{uint64(len(f))}, data: gguf.EncodeF32(f)}
	}
	return []ckptTensor{table("rope_factors_long.weight", rs.LongFactor), table("rope_factors_short.weight", rs.ShortFactor)}
}

// phi3AttnFactor is the script's LongRoPE attention factor, sqrt(1 +
// ln(s)/ln(original)) for s = max_position_embeddings / original > 1, else
// 1, in float64 and stored as float32.
func phi3AttnFactor(cfg *CheckpointConfig) float32 {
	s := float64(cfg.MaxPositions) / float64(cfg.OriginalMaxPositions)
	if s <= 1 {
		return 1
	}
	return float32(math.Sqrt(1 + math.Log(s)/math.Log(float64(cfg.OriginalMaxPositions))))
}

// phi3KVs are the keys Phi3MiniModel.set_gguf_parameters writes (it
// replaces TextModel's), and the attention factor its
// generate_extra_tensors adds with rope_scaling.
func phi3KVs(cfg *CheckpointConfig, name string, fileType uint32) []gguf.KV {
	u := func(n int) uint32 { return uint32(n) }
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: "phi3"},
		{Key: "general.name", Value: name},
		{Key: "phi3.context_length", Value: u(cfg.MaxPositions)},
		{Key: "phi3.rope.scaling.original_context_length", Value: u(cfg.OriginalMaxPositions)},
		{Key: "phi3.embedding_length", Value: u(cfg.HiddenSize)},
		{Key: "phi3.feed_forward_length", Value: u(cfg.IntermediateSize)},
		{Key: "phi3.block_count", Value: u(cfg.NumLayers)},
		{Key: "phi3.attention.head_count", Value: u(cfg.NumHeads)},
		{Key: "phi3.attention.head_count_kv", Value: u(cfg.NumKVHeads)},
		{Key: "phi3.attention.layer_norm_rms_epsilon", Value: float32(cfg.RMSNormEps)},
		{Key: "phi3.rope.dimension_count", Value: u(phi3RotaryDims(cfg))},
		{Key: "phi3.rope.freq_base", Value: float32(cfg.RopeTheta)},
		{Key: "general.file_type", Value: fileType},
		{Key: "phi3.attention.sliding_window", Value: u(cfg.SlidingWindow)},
	}
	if cfg.RopeScaling != nil {
		kvs = append(kvs, gguf.KV{Key: "phi3.rope.scaling.attn_factor", Value: phi3AttnFactor(cfg)})
	}
	return kvs
}
