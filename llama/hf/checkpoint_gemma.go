package hf

import (
	"encoding/json"
	"fmt"

	"github.com/fireact/fireact/llama/gguf"
)

// refusedCheckpointArchs are architectures close to a supported one that the
// converter refuses, with the reason.
var refusedCheckpointArchs = map[string]string{
	"Gemma3ForConditionalGeneration": "it is Gemma-3's vision-language checkpoint (language_model.* and vision_tower.*); " +
		"convert a text-only Gemma3ForCausalLM checkpoint (gemma-3-1b, gemma-3-270m) instead",
}

// GemmaConfig is the part of a Gemma-2/3 config.json beyond the llama
// family's that the conversion writes or checks against llama.cpp.
type GemmaConfig struct {
	// AttnSoftcap and FinalSoftcap are attn_logit_softcapping and
	// final_logit_softcapping; 0 when null (Gemma-3 has no attention cap
	// and usually no final one).
	AttnSoftcap, FinalSoftcap float64
	// SlidingWindow is sliding_window; 0 when Gemma-3's
	// sliding_window_pattern is 1 (no sliding-window layers).
	SlidingWindow int
}

// rawGemmaConfig is the Gemma part of config.json as decoded.
type rawGemmaConfig struct {
	HiddenActivation     *string          `json:"hidden_activation"`
	HiddenAct            *string          `json:"hidden_act"`
	QueryPreAttnScalar   *float64         `json:"query_pre_attn_scalar"`
	AttnSoftcap          *float64         `json:"attn_logit_softcapping"`
	FinalSoftcap         *float64         `json:"final_logit_softcapping"`
	SlidingWindow        *int             `json:"sliding_window"`
	SlidingWindowPattern *int             `json:"sliding_window_pattern"`
	LayerTypes           []string         `json:"layer_types"`
	RopeLocalBaseFreq    *float64         `json:"rope_local_base_freq"`
	RopeParameters       *json.RawMessage `json:"rope_parameters"`
}

// gemmaDefaults are transformers' Gemma2Config and Gemma3TextConfig defaults
// for the fields a config.json may leave out.
var gemmaDefaults = map[string]struct {
	queryPreAttnScalar float64
	pattern            int     // llama.cpp's set_swa_pattern
	layers27B          int     // llama.cpp's block count of the 27B size
	ropeTheta          float64 // the global layers' base when rope_theta is absent
}{
	"gemma2": {queryPreAttnScalar: 224, pattern: 2, layers27B: 46, ropeTheta: 10000},
	"gemma3": {queryPreAttnScalar: 256, pattern: 6, layers27B: 62, ropeTheta: 1e6},
}

// parseGemmaConfig reads the Gemma fields of config.json b into c.Gemma and
// refuses what llama.cpp's gemma2/gemma3 would compute differently from
// transformers, since llama.cpp hard-codes it instead of reading a key: the
// activation, the attention scale, the sliding-window layer pattern and
// Gemma-3's local RoPE base.
func parseGemmaConfig(c *CheckpointConfig, raw rawCheckpointConfig, b []byte) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("hf: %s: "+format, append([]any{c.Path}, args...)...)
	}
	var g rawGemmaConfig
	if err := json.Unmarshal(b, &g); err != nil {
		return fmt.Errorf("hf: %s: %w", c.Path, err)
	}
	arch := checkpointArchs[c.Architecture].gguf
	def := gemmaDefaults[arch]
	c.Gemma = &GemmaConfig{}
	if err := checkGemmaActivation(g); err != nil {
		return fail("%v", err)
	}
	if !c.HeadDimSet {
		return fail("head_dim is missing (Gemma's head size is not hidden_size/num_attention_heads)")
	}
	// transformers defaults tie_word_embeddings to true for Gemma, and
	// llama.cpp's gemma2 never reads an output matrix.
	if raw.TieWordEmbeddings == nil {
		c.TieWordEmbeddings = true
	}
	if arch == "gemma2" && !c.TieWordEmbeddings {
		return fail("tie_word_embeddings is false, but llama.cpp's gemma2 always reuses the token embedding as the output")
	}
	if err := checkGemmaAttnScale(c, g, def.queryPreAttnScalar, def.layers27B); err != nil {
		return fail("%v", err)
	}
	if g.RopeParameters != nil && !isNull(*g.RopeParameters) {
		return fail("rope_parameters (transformers 5's layout) is not supported; use a config with rope_theta and rope_local_base_freq")
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = def.ropeTheta
	}
	switch arch {
	case "gemma2":
		if g.AttnSoftcap == nil || g.FinalSoftcap == nil || !(*g.AttnSoftcap > 0) || !(*g.FinalSoftcap > 0) {
			return fail("attn_logit_softcapping and final_logit_softcapping must be positive numbers: llama.cpp always soft-caps gemma2")
		}
		c.Gemma.AttnSoftcap, c.Gemma.FinalSoftcap = *g.AttnSoftcap, *g.FinalSoftcap
		// llama.cpp's gemma2 reads no RoPE base and uses 10000.
		if c.RopeTheta != 10000 {
			return fail("rope_theta is %g, but llama.cpp's gemma2 uses 10000", c.RopeTheta)
		}
	case "gemma3":
		if g.AttnSoftcap != nil {
			return fail("attn_logit_softcapping is %g, but Gemma-3 (and llama.cpp's gemma3) has no attention soft-capping", *g.AttnSoftcap)
		}
		if g.FinalSoftcap != nil {
			if !(*g.FinalSoftcap > 0) {
				return fail("final_logit_softcapping is %g, want > 0 or null", *g.FinalSoftcap)
			}
			c.Gemma.FinalSoftcap = *g.FinalSoftcap
		}
		if g.RopeLocalBaseFreq != nil && *g.RopeLocalBaseFreq != 10000 {
			return fail("rope_local_base_freq is %g, but llama.cpp's gemma3 fixes the sliding-window layers' RoPE base at 10000", *g.RopeLocalBaseFreq)
		}
	}
	pattern := def.pattern
	if arch == "gemma3" && g.SlidingWindowPattern != nil {
		if p := *g.SlidingWindowPattern; p != 1 && p != def.pattern {
			return fail("sliding_window_pattern is %d, but llama.cpp's gemma3 makes five of every six layers sliding-window (pattern 6) or, without sliding_window, none", p)
		}
		pattern = *g.SlidingWindowPattern
	}
	if pattern != 1 {
		if g.SlidingWindow == nil || *g.SlidingWindow <= 0 {
			return fail("sliding_window is missing or not positive")
		}
		c.Gemma.SlidingWindow = *g.SlidingWindow
	}
	return checkGemmaLayerTypes(c, g.LayerTypes, pattern)
}

// checkGemmaActivation requires GELU with the tanh approximation, the
// GEGLU llama.cpp's gemma2/gemma3 compute.
func checkGemmaActivation(g rawGemmaConfig) error {
	act, field := "gelu_pytorch_tanh", "hidden_activation"
	switch {
	case g.HiddenActivation != nil:
		act = *g.HiddenActivation
	case g.HiddenAct != nil:
		act, field = *g.HiddenAct, "hidden_act"
	}
	if act != "gelu_pytorch_tanh" {
		return fmt.Errorf("%s is %q, but llama.cpp's Gemma uses GELU with the tanh approximation (gelu_pytorch_tanh)", field, act)
	}
	return nil
}

// checkGemmaAttnScale refuses a query_pre_attn_scalar other than the one
// llama.cpp derives (it reads no key): head_dim, or hidden_size/num_heads
// for the 27B block count.
func checkGemmaAttnScale(c *CheckpointConfig, g rawGemmaConfig, def float64, layers27B int) error {
	s := def
	if g.QueryPreAttnScalar != nil {
		s = *g.QueryPreAttnScalar
	}
	want, why := float64(c.HeadDim), "head_dim"
	if c.NumLayers == layers27B {
		want, why = float64(c.HiddenSize/c.NumHeads), fmt.Sprintf("hidden_size/num_attention_heads (for %d layers, the 27B size)", layers27B)
	}
	if s != want {
		return fmt.Errorf("query_pre_attn_scalar is %g, but llama.cpp scales the attention by 1/√%g (%s)", s, want, why)
	}
	return nil
}

// checkGemmaLayerTypes checks config.json's layer_types, when it has them,
// against the sliding-window layers llama.cpp derives from the pattern
// (llama_hparams::set_swa_pattern: layer il slides when il % n < n-1).
func checkGemmaLayerTypes(c *CheckpointConfig, types []string, pattern int) error {
	if types == nil {
		return nil
	}
	if len(types) != c.NumLayers {
		return fmt.Errorf("hf: %s: layer_types has %d entries for %d layers", c.Path, len(types), c.NumLayers)
	}
	for il, lt := range types {
		want := "full_attention"
		if pattern > 1 && il%pattern < pattern-1 {
			want = "sliding_attention"
		}
		if lt != want {
			return fmt.Errorf("hf: %s: layer_types[%d] is %q, but llama.cpp makes that layer %s", c.Path, il, lt, want)
		}
	}
	return nil
}

// gemmaRules lists a Gemma-2/3 checkpoint's tensors with llama.cpp's names
// (convert_hf_to_gguf.py's tensor map): four norms per block, Gemma's
// RMSNorm (1 + w) folded into the weights (norm_shift), no Q/K permutation
// (Gemma uses NEOX RoPE, HF's own layout), and an output matrix only for an
// untied Gemma-3.
func gemmaRules(cfg *CheckpointConfig, arch checkpointArch) []tensorRule {
	h, ff, v := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.VocabSize)
	q, kv, hd := int64(cfg.NumHeads*cfg.HeadDim), int64(cfg.NumKVHeads*cfg.HeadDim), int64(cfg.HeadDim)
	norm := func(hfName, ggufName string, n int64) tensorRule {
		return tensorRule{hf: hfName, gguf: ggufName, shape: []int64{n}, shift: 1}
	}
	rules := []tensorRule{{hf: "model.embed_tokens.weight", gguf: "token_embd.weight", shape: []int64{v, h}}}
	for l := 0; l < cfg.NumLayers; l++ {
		p, g := fmt.Sprintf("model.layers.%d.", l), fmt.Sprintf("blk.%d.", l)
		rules = append(rules,
			norm(p+"input_layernorm.weight", g+"attn_norm.weight", h),
			tensorRule{hf: p + "self_attn.q_proj.weight", gguf: g + "attn_q.weight", shape: []int64{q, h}},
			tensorRule{hf: p + "self_attn.k_proj.weight", gguf: g + "attn_k.weight", shape: []int64{kv, h}},
			tensorRule{hf: p + "self_attn.v_proj.weight", gguf: g + "attn_v.weight", shape: []int64{kv, h}},
		)
		if arch.qkNorm {
			rules = append(rules,
				norm(p+"self_attn.q_norm.weight", g+"attn_q_norm.weight", hd),
				norm(p+"self_attn.k_norm.weight", g+"attn_k_norm.weight", hd))
		}
		rules = append(rules,
			tensorRule{hf: p + "self_attn.o_proj.weight", gguf: g + "attn_output.weight", shape: []int64{h, q}},
			// Gemma's post_attention_layernorm follows the attention (llama.cpp's
			// post_attention_norm); pre_feedforward_layernorm is ffn_norm.
			norm(p+"post_attention_layernorm.weight", g+"post_attention_norm.weight", h),
			norm(p+"pre_feedforward_layernorm.weight", g+"ffn_norm.weight", h),
			tensorRule{hf: p + "mlp.gate_proj.weight", gguf: g + "ffn_gate.weight", shape: []int64{ff, h}},
			tensorRule{hf: p + "mlp.up_proj.weight", gguf: g + "ffn_up.weight", shape: []int64{ff, h}},
			tensorRule{hf: p + "mlp.down_proj.weight", gguf: g + "ffn_down.weight", shape: []int64{h, ff}},
			norm(p+"post_feedforward_layernorm.weight", g+"post_ffw_norm.weight", h),
		)
	}
	rules = append(rules, norm("model.norm.weight", "output_norm.weight", h))
	if !cfg.TieWordEmbeddings {
		rules = append(rules, tensorRule{hf: "lm_head.weight", gguf: "output.weight", shape: []int64{v, h}})
	}
	return rules
}

// shiftNorm adds shift to the tensor b of type src with n elements, in the
// precision convert_hf_to_gguf.py adds it: the script turns BF16 into F32
// first but keeps F16, so an F16 norm's 1 + w is rounded to F16.
func shiftNorm(b []byte, src gguf.Type, shift float32, n int) ([]byte, gguf.Type, error) {
	x, err := gguf.Dequantize(src, b, n)
	if err != nil {
		return nil, 0, err
	}
	for i := range x {
		x[i] += shift
	}
	if src == gguf.TypeF16 {
		return gguf.EncodeF16(x), gguf.TypeF16, nil
	}
	return gguf.EncodeF32(x), gguf.TypeF32, nil
}

// gemmaKVs are the keys convert_hf_to_gguf.py's Gemma2Model and
// Gemma3Model write (the latter over TextModel's).
func gemmaKVs(cfg *CheckpointConfig, arch checkpointArch, name string, fileType uint32) []gguf.KV {
	a := arch.gguf
	u := func(n int) uint32 { return uint32(n) }
	g := cfg.Gemma
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: a},
		{Key: "general.name", Value: name},
		{Key: a + ".context_length", Value: u(cfg.MaxPositions)},
		{Key: a + ".embedding_length", Value: u(cfg.HiddenSize)},
		{Key: a + ".block_count", Value: u(cfg.NumLayers)},
		{Key: a + ".feed_forward_length", Value: u(cfg.IntermediateSize)},
		{Key: a + ".attention.head_count", Value: u(cfg.NumHeads)},
		{Key: a + ".attention.head_count_kv", Value: u(cfg.NumKVHeads)},
		{Key: a + ".attention.layer_norm_rms_epsilon", Value: float32(cfg.RMSNormEps)},
		{Key: a + ".attention.key_length", Value: u(cfg.HeadDim)},
		{Key: a + ".attention.value_length", Value: u(cfg.HeadDim)},
		{Key: "general.file_type", Value: fileType},
	}
	if a == "gemma3" {
		kvs = append(kvs, gguf.KV{Key: a + ".rope.freq_base", Value: float32(cfg.RopeTheta)})
		if rs := cfg.RopeScaling; rs != nil && rs.RopeType == "linear" {
			kvs = append(kvs,
				gguf.KV{Key: a + ".rope.scaling.type", Value: "linear"},
				gguf.KV{Key: a + ".rope.scaling.factor", Value: float32(*rs.Factor)})
		}
	}
	if g.AttnSoftcap != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".attn_logit_softcapping", Value: float32(g.AttnSoftcap)})
	}
	if g.FinalSoftcap != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".final_logit_softcapping", Value: float32(g.FinalSoftcap)})
	}
	if g.SlidingWindow != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".attention.sliding_window", Value: u(g.SlidingWindow)})
	}
	return kvs
}
