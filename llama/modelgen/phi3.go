package modelgen

import (
	"fmt"
	"math"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// Phi3Config describes a model of llama.cpp's phi3 architecture, the one
// Phi-3.5-mini-instruct and Phi-4-mini-instruct (Phi3ForCausalLM) convert
// to: a fused attn_qkv projection, a fused gate+up projection in ffn_up (2·NFF
// rows, gate first), NEOX RoPE, optionally on part of each head only, and
// optionally LongRoPE's two frequency-factor tables. The tensor names and
// keys are those convert_hf_to_gguf.py's Phi3MiniModel writes. Zero values
// select the documented defaults.
type Phi3Config struct {
	// Name is general.name; default "modelgen-phi". llama.cpp's vocabulary
	// loader treats a name containing "phi3" or "phi-3" (any case) as
	// Phi-3's tokenizer and fails unless the vocabulary has <unk>, <s>,
	// </s> and <|endoftext|>; WritePhi3 refuses such a name without them.
	Name string
	// Vocab is the tokenizer vocabulary (required).
	Vocab Vocab
	// NEmbd, NLayer, NHead, NHeadKV (default NHead) and NFF size the model;
	// NCtx is max_position_embeddings, written as phi3.context_length
	// (default 4096).
	NEmbd, NLayer, NHead, NHeadKV, NFF, NCtx int
	// PartialRotary is config.json's partial_rotary_factor (Phi-4-mini:
	// 0.75); 0 means 1. The rotated dimensions per head are
	// int(PartialRotary·NEmbd) / NHead, as the converter computes them.
	PartialRotary float64
	// RopeFreqBase defaults to 10000 and RMSEps to 1e-5.
	RopeFreqBase, RMSEps float32
	// TiedOutput omits output.weight (Phi-4-mini ties it to token_embd).
	TiedOutput bool
	// LongRoPE, if set, adds rope_factors_long.weight and
	// rope_factors_short.weight and the attention factor key; its
	// OriginalContext is then phi3.rope.scaling.original_context_length
	// (otherwise NCtx, as for Phi-3-mini-4k whose two are equal).
	LongRoPE *LongRoPE
	// SlidingWindow is written as phi3.attention.sliding_window, as the
	// converter does (0 when config.json has none). llama.cpp ignores it
	// for phi3 (it logs "Phi SWA is currently disabled").
	SlidingWindow int
	// WeightType is the type of the attention and feed-forward matrices
	// (F32, F16, Q8_0 or Q4_0, as LlamaConfig's).
	WeightType gguf.Type
	// Seed selects the random weights.
	Seed uint64
}

// LongRoPE is the rope_scaling of a Phi-3.5/Phi-4-mini config.json with
// type "longrope": one factor per rotated dimension pair for contexts up to
// the original context (Short) and one for longer ones (Long). llama.cpp
// picks the table per context: long when the context per sequence exceeds
// OriginalContext, short otherwise.
type LongRoPE struct {
	// OriginalContext is original_max_position_embeddings.
	OriginalContext int
	// Long and Short are long_factor and short_factor (n_rot/2 each).
	Long, Short []float32
}

// Phi3RotaryDims returns the RoPE dimensions per head the converter writes
// as rope.dimension_count: int(partial_rotary_factor·hidden_size) /
// num_attention_heads (partial 0 means 1).
func Phi3RotaryDims(nEmbd, nHead int, partial float64) int {
	if partial == 0 {
		partial = 1
	}
	return int(partial*float64(nEmbd)) / nHead
}

// LongRoPEAttnFactor is the attention factor convert_hf_to_gguf.py writes as
// rope.scaling.attn_factor for LongRoPE: sqrt(1 + ln(s)/ln(original)) with s
// = maxPositions/original, or 1 when s <= 1. llama.cpp multiplies RoPE's
// cos and sin by it, whichever table is in use.
func LongRoPEAttnFactor(maxPositions, original int) float32 {
	s := float64(maxPositions) / float64(original)
	if s <= 1 {
		return 1
	}
	return float32(math.Sqrt(1 + math.Log(s)/math.Log(float64(original))))
}

func (c Phi3Config) withDefaults() Phi3Config {
	if c.Name == "" {
		c.Name = "modelgen-phi"
	}
	if c.NHeadKV == 0 {
		c.NHeadKV = c.NHead
	}
	if c.NCtx == 0 {
		c.NCtx = 4096
	}
	if c.RopeFreqBase == 0 {
		c.RopeFreqBase = 10000
	}
	if c.RMSEps == 0 {
		c.RMSEps = 1e-5
	}
	return c
}

// rotaryDims is the defaulted configuration's rope.dimension_count.
func (c Phi3Config) rotaryDims() int { return Phi3RotaryDims(c.NEmbd, c.NHead, c.PartialRotary) }

// originalContext is rope.scaling.original_context_length.
func (c Phi3Config) originalContext() int {
	if c.LongRoPE != nil {
		return c.LongRoPE.OriginalContext
	}
	return c.NCtx
}

func (c Phi3Config) validate() error {
	if err := c.Vocab.Validate(); err != nil {
		return err
	}
	if n := strings.ToLower(c.Name); strings.Contains(n, "phi3") || strings.Contains(n, "phi-3") {
		for _, tok := range []string{"<unk>", "<s>", "</s>", "<|endoftext|>"} {
			if c.Vocab.ID(tok) < 0 {
				return fmt.Errorf("modelgen: phi3: name %q makes llama.cpp look up Phi-3's special token %s, which the vocabulary lacks", c.Name, tok)
			}
		}
	}
	if c.NEmbd <= 0 || c.NLayer <= 0 || c.NHead <= 0 || c.NHeadKV <= 0 || c.NFF <= 0 || c.NCtx <= 0 {
		return fmt.Errorf("modelgen: phi3: NEmbd %d, NLayer %d, NHead %d, NHeadKV %d, NFF %d and NCtx %d must be positive",
			c.NEmbd, c.NLayer, c.NHead, c.NHeadKV, c.NFF, c.NCtx)
	}
	if c.NEmbd%c.NHead != 0 || c.NHead%c.NHeadKV != 0 {
		return fmt.Errorf("modelgen: phi3: NEmbd %d, NHead %d, NHeadKV %d: want NHead | NEmbd and NHeadKV | NHead", c.NEmbd, c.NHead, c.NHeadKV)
	}
	if r := c.rotaryDims(); r <= 0 || r%2 != 0 || r > c.NEmbd/c.NHead {
		return fmt.Errorf("modelgen: phi3: PartialRotary %g gives %d rotary dimensions per head of %d: want an even number in (0, head size]",
			c.PartialRotary, r, c.NEmbd/c.NHead)
	}
	if !encodable(c.WeightType) {
		return fmt.Errorf("modelgen: phi3: WeightType %s is not supported (use F32, F16, Q8_0 or Q4_0)", c.WeightType)
	}
	if bs := int(c.WeightType.BlockSize()); bs > 1 && (c.NEmbd%bs != 0 || c.NFF%bs != 0) {
		return fmt.Errorf("modelgen: phi3: WeightType %s needs NEmbd (%d) and NFF (%d) to be multiples of %d", c.WeightType, c.NEmbd, c.NFF, bs)
	}
	if r := c.LongRoPE; r != nil {
		// The converter's own check: both tables hold one factor per
		// rotated pair.
		if n := c.rotaryDims() / 2; len(r.Long) != n || len(r.Short) != n {
			return fmt.Errorf("modelgen: phi3: LongRoPE has %d long and %d short factors, want %d each (rotary dimensions / 2)", len(r.Long), len(r.Short), n)
		}
		if r.OriginalContext <= 0 {
			return fmt.Errorf("modelgen: phi3: LongRoPE.OriginalContext %d must be positive", r.OriginalContext)
		}
	}
	return nil
}

// tensors lists the model's tensors in the converter's order: the generated
// LongRoPE tables first, then the checkpoint's.
func (c Phi3Config) tensors() []tensorSpec {
	e, v, ff := uint64(c.NEmbd), uint64(c.Vocab.Len()), uint64(c.NFF)
	kv := uint64(c.NEmbd / c.NHead * c.NHeadKV)
	var ts []tensorSpec
	if r := c.LongRoPE; r != nil {
		n := []uint64{uint64(len(r.Long))}
		ts = append(ts,
			tensorSpec{name: "rope_factors_long.weight", typ: gguf.TypeF32, shape: n, values: r.Long},
			tensorSpec{name: "rope_factors_short.weight", typ: gguf.TypeF32, shape: n, values: r.Short})
	}
	ts = append(ts, tensorSpec{name: "token_embd.weight", typ: gguf.TypeF32, shape: []uint64{e, v}})
	for i := 0; i < c.NLayer; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts,
			tensorSpec{name: p + "attn_norm.weight", typ: gguf.TypeF32, shape: []uint64{e}, ones: true},
			tensorSpec{name: p + "attn_qkv.weight", typ: c.WeightType, shape: []uint64{e, e + 2*kv}},
			tensorSpec{name: p + "attn_output.weight", typ: c.WeightType, shape: []uint64{e, e}},
			tensorSpec{name: p + "ffn_norm.weight", typ: gguf.TypeF32, shape: []uint64{e}, ones: true},
			tensorSpec{name: p + "ffn_up.weight", typ: c.WeightType, shape: []uint64{e, 2 * ff}},
			tensorSpec{name: p + "ffn_down.weight", typ: c.WeightType, shape: []uint64{ff, e}},
		)
	}
	ts = append(ts, tensorSpec{name: "output_norm.weight", typ: gguf.TypeF32, shape: []uint64{e}, ones: true})
	if !c.TiedOutput {
		ts = append(ts, tensorSpec{name: "output.weight", typ: gguf.TypeF32, shape: []uint64{e, v}})
	}
	return ts
}

// kvs lists the metadata Phi3MiniModel.set_gguf_parameters writes, and the
// vocabulary's keys.
func (c Phi3Config) kvs() []gguf.KV {
	u32 := func(n int) uint32 { return uint32(n) }
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: "phi3"},
		{Key: "general.name", Value: c.Name},
		{Key: "general.file_type", Value: fileType(c.WeightType)},
		{Key: "phi3.context_length", Value: u32(c.NCtx)},
		{Key: "phi3.rope.scaling.original_context_length", Value: u32(c.originalContext())},
		{Key: "phi3.embedding_length", Value: u32(c.NEmbd)},
		{Key: "phi3.feed_forward_length", Value: u32(c.NFF)},
		{Key: "phi3.block_count", Value: u32(c.NLayer)},
		{Key: "phi3.attention.head_count", Value: u32(c.NHead)},
		{Key: "phi3.attention.head_count_kv", Value: u32(c.NHeadKV)},
		{Key: "phi3.attention.layer_norm_rms_epsilon", Value: c.RMSEps},
		{Key: "phi3.rope.dimension_count", Value: u32(c.rotaryDims())},
		{Key: "phi3.rope.freq_base", Value: c.RopeFreqBase},
		{Key: "phi3.attention.sliding_window", Value: u32(c.SlidingWindow)},
	}
	if r := c.LongRoPE; r != nil {
		kvs = append(kvs, gguf.KV{Key: "phi3.rope.scaling.attn_factor", Value: LongRoPEAttnFactor(c.NCtx, r.OriginalContext)})
	}
	return append(kvs, c.Vocab.kvs(true)...)
}

// WritePhi3 writes a randomly initialized phi3 model for cfg to path. Norm
// weights are exactly 1, matrices approximately N(0, 1/n_in), each tensor
// seeded by its name as WriteLlama's.
func WritePhi3(path string, cfg Phi3Config) error {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	return writeModel(path, c.kvs(), c.tensors(), c.Seed, 0)
}
