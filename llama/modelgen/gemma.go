package modelgen

import (
	"fmt"

	"github.com/fireact/fireact/llama/gguf"
)

// GemmaConfig describes a Gemma-2 or Gemma-3 text decoder as
// convert_hf_to_gguf.py writes it (Gemma2Model, Gemma3Model): tied output,
// norms around and after both sub-blocks, a GELU-gated feed-forward, and
// sliding-window attention on some layers. Zero values select the
// documented defaults.
type GemmaConfig struct {
	// Arch is "gemma2" or "gemma3" (which adds the per-head attn_q_norm and
	// attn_k_norm).
	Arch string
	// Name is general.name; default "modelgen-<arch>".
	Name string
	// Vocab is the tokenizer vocabulary (required).
	Vocab Vocab
	// NEmbd, NLayer, NHead, NHeadKV (default NHead), NFF and NCtx (default
	// 2048) size the model. HeadDim is written as attention.key_length and
	// value_length (default NEmbd/NHead); Gemma's is often not NEmbd/NHead.
	NEmbd, NLayer, NHead, NHeadKV, HeadDim, NFF, NCtx int
	// SlidingWindow is attention.sliding_window. llama.cpp makes every
	// second layer (gemma2: layers 0, 2, ...) or five of every six
	// (gemma3: all but 5, 11, ...) sliding-window layers. For gemma2 the
	// key is always written (default 4096, llama.cpp's own default); for
	// gemma3 zero writes no key, and llama.cpp then has no sliding window.
	SlidingWindow int
	// RopeFreqBase is rope.freq_base: gemma3's global layers' base (default
	// 1e6; llama.cpp fixes its sliding-window layers' at 10000). Gemma2 has
	// no key (zero; llama.cpp uses 10000).
	RopeFreqBase float32
	// AttnSoftcap (gemma2 only, default 50) and FinalSoftcap (gemma2
	// default 30; gemma3 zero writes no key) are the soft-capping values.
	AttnSoftcap, FinalSoftcap float32
	// RopeScaleLinear, if set (gemma3 only), is rope_scaling {"rope_type":
	// "linear", "factor": F}, written as rope.scaling.type and
	// rope.scaling.factor (Gemma-3 4B and larger use 8). llama.cpp applies it
	// to the global layers only, as transformers does.
	RopeScaleLinear float32
	// RMSEps defaults to 1e-6.
	RMSEps float32
	// Seed selects the weights; InitStd as LlamaConfig's.
	Seed    uint64
	InitStd float32
}

// gemmaNormStd is the spread of the norm weights around 1. Gemma's GGUF norms
// hold HF's 1 + w; weights of exactly 1 would hide a dropped or swapped norm.
const gemmaNormStd = 0.2

func (c GemmaConfig) withDefaults() GemmaConfig {
	if c.Name == "" {
		c.Name = "modelgen-" + c.Arch
	}
	if c.NHeadKV == 0 {
		c.NHeadKV = c.NHead
	}
	if c.HeadDim == 0 && c.NHead > 0 {
		c.HeadDim = c.NEmbd / c.NHead
	}
	if c.NCtx == 0 {
		c.NCtx = 2048
	}
	if c.RMSEps == 0 {
		c.RMSEps = 1e-6
	}
	switch c.Arch {
	case "gemma2":
		if c.SlidingWindow == 0 {
			c.SlidingWindow = 4096
		}
		if c.AttnSoftcap == 0 {
			c.AttnSoftcap = 50
		}
		if c.FinalSoftcap == 0 {
			c.FinalSoftcap = 30
		}
	case "gemma3":
		if c.RopeFreqBase == 0 {
			c.RopeFreqBase = 1e6
		}
	}
	return c
}

func (c GemmaConfig) validate() error {
	if c.Arch != "gemma2" && c.Arch != "gemma3" {
		return fmt.Errorf("modelgen: unsupported Gemma architecture %q (want gemma2 or gemma3)", c.Arch)
	}
	if err := c.Vocab.Validate(); err != nil {
		return err
	}
	if c.NEmbd <= 0 || c.NLayer <= 0 || c.NHead <= 0 || c.NHeadKV <= 0 || c.HeadDim <= 0 || c.NFF <= 0 || c.NCtx <= 0 {
		return fmt.Errorf("modelgen: NEmbd %d, NLayer %d, NHead %d, NHeadKV %d, HeadDim %d, NFF %d and NCtx %d must be positive",
			c.NEmbd, c.NLayer, c.NHead, c.NHeadKV, c.HeadDim, c.NFF, c.NCtx)
	}
	if c.HeadDim%2 != 0 || c.NHead%c.NHeadKV != 0 {
		return fmt.Errorf("modelgen: HeadDim %d must be even and NHead %d a multiple of NHeadKV %d", c.HeadDim, c.NHead, c.NHeadKV)
	}
	if c.Arch == "gemma3" && c.AttnSoftcap != 0 {
		return fmt.Errorf("modelgen: gemma3 has no attention soft-capping (AttnSoftcap %g)", c.AttnSoftcap)
	}
	if c.RopeScaleLinear != 0 && (c.Arch != "gemma3" || !(c.RopeScaleLinear > 0)) {
		return fmt.Errorf("modelgen: RopeScaleLinear %g: want a positive factor, on gemma3", c.RopeScaleLinear)
	}
	if c.Arch == "gemma2" && c.RopeFreqBase != 0 {
		return fmt.Errorf("modelgen: convert_hf_to_gguf.py writes no rope.freq_base for gemma2 (RopeFreqBase %g)", c.RopeFreqBase)
	}
	return nil
}

// tensors lists the model's tensors in convert_hf_to_gguf.py's order (HF's
// module order within a block). There is no output.weight: llama.cpp's
// gemma2 and gemma3 reuse token_embd.
func (c GemmaConfig) tensors() []tensorSpec {
	e, v, ff := uint64(c.NEmbd), uint64(c.Vocab.Len()), uint64(c.NFF)
	q, kv, hd := uint64(c.NHead*c.HeadDim), uint64(c.NHeadKV*c.HeadDim), uint64(c.HeadDim)
	norm := func(name string, n uint64) tensorSpec {
		x := make([]float32, n)
		g := newNormal(c.Seed, name)
		for i := range x {
			x[i] = 1 + g.next(gemmaNormStd)
		}
		return tensorSpec{name: name, typ: gguf.TypeF32, shape: []uint64{n}, values: x}
	}
	mat := func(name string, in, out uint64) tensorSpec {
		return tensorSpec{name: name, typ: gguf.TypeF32, shape: []uint64{in, out}}
	}
	ts := []tensorSpec{mat("token_embd.weight", e, v)}
	for i := 0; i < c.NLayer; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts, norm(p+"attn_norm.weight", e), mat(p+"attn_q.weight", e, q), mat(p+"attn_k.weight", e, kv), mat(p+"attn_v.weight", e, kv))
		if c.Arch == "gemma3" {
			ts = append(ts, norm(p+"attn_q_norm.weight", hd), norm(p+"attn_k_norm.weight", hd))
		}
		ts = append(ts,
			mat(p+"attn_output.weight", q, e),
			norm(p+"post_attention_norm.weight", e),
			norm(p+"ffn_norm.weight", e),
			mat(p+"ffn_gate.weight", e, ff),
			mat(p+"ffn_up.weight", e, ff),
			mat(p+"ffn_down.weight", ff, e),
			norm(p+"post_ffw_norm.weight", e),
		)
	}
	return append(ts, norm("output_norm.weight", e))
}

// kvs returns the metadata keys convert_hf_to_gguf.py writes for the
// architecture, and the tokenizer keys.
func (c GemmaConfig) kvs() []gguf.KV {
	a := c.Arch
	u32 := func(n int) uint32 { return uint32(n) }
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: a},
		{Key: "general.name", Value: c.Name},
		{Key: a + ".context_length", Value: u32(c.NCtx)},
		{Key: a + ".embedding_length", Value: u32(c.NEmbd)},
		{Key: a + ".block_count", Value: u32(c.NLayer)},
		{Key: a + ".feed_forward_length", Value: u32(c.NFF)},
		{Key: a + ".attention.head_count", Value: u32(c.NHead)},
		{Key: a + ".attention.head_count_kv", Value: u32(c.NHeadKV)},
		{Key: a + ".attention.layer_norm_rms_epsilon", Value: c.RMSEps},
		{Key: a + ".attention.key_length", Value: u32(c.HeadDim)},
		{Key: a + ".attention.value_length", Value: u32(c.HeadDim)},
		{Key: "general.file_type", Value: uint32(0)},
	}
	if c.RopeFreqBase != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".rope.freq_base", Value: c.RopeFreqBase})
	}
	if c.RopeScaleLinear != 0 {
		kvs = append(kvs,
			gguf.KV{Key: a + ".rope.scaling.type", Value: "linear"},
			gguf.KV{Key: a + ".rope.scaling.factor", Value: c.RopeScaleLinear})
	}
	if c.AttnSoftcap != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".attn_logit_softcapping", Value: c.AttnSoftcap})
	}
	if c.FinalSoftcap != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".final_logit_softcapping", Value: c.FinalSoftcap})
	}
	if c.SlidingWindow != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".attention.sliding_window", Value: u32(c.SlidingWindow)})
	}
	return append(kvs, c.Vocab.kvs(true)...)
}

// WriteGemma writes a randomly initialized F32 Gemma-2 or Gemma-3 model for
// cfg to path. Matrices are approximately N(0, std²) with std = InitStd or
// 1/sqrt(n_in); norm weights are 1 + N(0, 0.2²), the (1 + w) the converter
// stores.
func WriteGemma(path string, cfg GemmaConfig) error {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	return writeModel(path, c.kvs(), c.tensors(), c.Seed, c.InitStd)
}
