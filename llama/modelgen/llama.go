package modelgen

import (
	"fmt"
	"io"
	"math"

	"github.com/fireact/fireact/llama/gguf"
)

// LlamaConfig describes a llama-style decoder-only transformer. Zero values
// select the documented defaults.
type LlamaConfig struct {
	// Arch is the llama.cpp architecture: "llama" (default), "qwen2"
	// (which adds the attn_q/attn_k/attn_v bias vectors), "qwen3" (which
	// adds the per-head attn_q_norm/attn_k_norm RMS norms instead),
	// "smollm3" (llama's tensors; llama.cpp skips RoPE on every fourth
	// layer, see SmolLM3UsesRope) or "granite" (llama's tensors and the
	// multipliers in Granite).
	Arch string
	// Name is general.name; default "modelgen-<arch>".
	Name string
	// Vocab is the tokenizer vocabulary (required), e.g. SPMVocab(words).
	Vocab Vocab
	// NEmbd is the hidden size, NLayer the number of blocks, NHead the
	// number of attention heads, NHeadKV the number of key/value heads
	// (default NHead), NFF the feed-forward size and NCtx the training
	// context length (default 2048).
	NEmbd, NLayer, NHead, NHeadKV, NFF, NCtx int
	// RopeFreqBase defaults to 10000 and RMSEps to 1e-5.
	RopeFreqBase, RMSEps float32
	// TiedOutput omits output.weight; llama.cpp then reuses token_embd.
	TiedOutput bool
	// WeightType is the type of the attention and feed-forward matrices:
	// F32 (the zero value), F16, Q8_0 or Q4_0. Quantized types need NEmbd
	// and NFF to be multiples of 32.
	WeightType gguf.Type
	// EmbedType is the type of token_embd.weight and OutputType that of
	// output.weight; both default to F32 (the zero value) and accept the same
	// types as WeightType. Norms and biases are always F32, as in
	// llama.cpp's own conversions.
	EmbedType, OutputType gguf.Type
	// Seed selects the random weights; the file is a deterministic function
	// of the whole configuration.
	Seed uint64
	// InitStd is the standard deviation of the matrix weights. Zero means
	// 1/sqrt(n_in) for each matrix, which keeps activations and logits
	// around unit scale so sampling is not degenerate.
	InitStd float32
	// ChatTemplate, if set, is stored as tokenizer.chat_template.
	ChatTemplate string
	// NoAddBOS stores tokenizer.ggml.add_bos_token = false, as Qwen and
	// SmolLM vocabularies have: tokenizing with special tokens adds no BOS.
	NoAddBOS bool
	// RopeScaling, if set (arch llama only), is Llama-3.1/3.2's "llama3" RoPE
	// scaling. As llama.cpp's convert_hf_to_gguf.py does for those models, it
	// is written as the tensor rope_freqs.weight (one factor per rotated
	// dimension pair, see Llama3RopeFactors) and as no metadata key.
	RopeScaling *Llama3RopeScaling
	// Granite, required with arch granite and only there, are its four
	// multipliers.
	Granite *GraniteScales
}

// Llama3RopeScaling is the rope_scaling block of a Llama-3.1/3.2
// config.json with rope_type "llama3". Zero fields take Hugging Face's
// defaults: Factor 8, LowFreqFactor 1, HighFreqFactor 4, OriginalContext
// 8192. Llama-3.2-1B/3B use Factor 32; Llama-3.1 uses 8.
type Llama3RopeScaling struct {
	Factor          float64 // "factor"
	LowFreqFactor   float64 // "low_freq_factor"
	HighFreqFactor  float64 // "high_freq_factor"
	OriginalContext int     // "original_max_position_embeddings"
}

// withDefaults fills the zero fields with Hugging Face's defaults.
func (s Llama3RopeScaling) withDefaults() Llama3RopeScaling {
	if s.Factor == 0 {
		s.Factor = 8
	}
	if s.LowFreqFactor == 0 {
		s.LowFreqFactor = 1
	}
	if s.HighFreqFactor == 0 {
		s.HighFreqFactor = 4
	}
	if s.OriginalContext == 0 {
		s.OriginalContext = 8192
	}
	return s
}

// validate checks a defaulted scaling: the smoothing between the two
// wavelength bounds divides by HighFreqFactor - LowFreqFactor.
func (s Llama3RopeScaling) validate() error {
	if !(s.Factor > 0) || !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || s.OriginalContext <= 0 {
		return fmt.Errorf("modelgen: RopeScaling: factor %g, low_freq_factor %g, high_freq_factor %g, original_max_position_embeddings %d: want factor > 0, 0 < low < high, context > 0",
			s.Factor, s.LowFreqFactor, s.HighFreqFactor, s.OriginalContext)
	}
	return nil
}

// Llama3RopeFactors returns the per-dimension-pair RoPE frequency factors
// (headDim/2 of them) of llama3 scaling for RoPE base freqBase, the values
// convert_hf_to_gguf.py stores in rope_freqs.weight and llama.cpp divides
// each pair's rotation frequency by. A pair whose wavelength 2π/θ is shorter
// than OriginalContext/HighFreqFactor keeps its frequency (factor 1), one
// longer than OriginalContext/LowFreqFactor is slowed by Factor, and the
// pairs between blend the two smoothly.
func Llama3RopeFactors(headDim int, freqBase float64, s Llama3RopeScaling) []float32 {
	s = s.withDefaults()
	ctx := float64(s.OriginalContext)
	lowWave, highWave := ctx/s.LowFreqFactor, ctx/s.HighFreqFactor
	out := make([]float32, headDim/2)
	for i := range out {
		theta := math.Pow(freqBase, -float64(2*i)/float64(headDim))
		wave := 2 * math.Pi / theta
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = float32(s.Factor)
		default:
			smooth := (ctx/wave - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			out[i] = float32(1 / ((1-smooth)/s.Factor + smooth))
		}
	}
	return out
}

// withDefaults returns the configuration with zero fields filled in.
func (c LlamaConfig) withDefaults() LlamaConfig {
	if c.Arch == "" {
		c.Arch = "llama"
	}
	if c.Name == "" {
		c.Name = "modelgen-" + c.Arch
	}
	if c.NHeadKV == 0 {
		c.NHeadKV = c.NHead
	}
	if c.NCtx == 0 {
		c.NCtx = 2048
	}
	if c.RopeFreqBase == 0 {
		c.RopeFreqBase = 10000
	}
	if c.RMSEps == 0 {
		c.RMSEps = 1e-5
	}
	return c
}

func encodable(t gguf.Type) bool {
	switch t {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ4_0:
		return true
	}
	return false
}

// validate checks the (defaulted) configuration.
func (c LlamaConfig) validate() error {
	switch c.Arch {
	case "llama", "qwen2", "qwen3", "smollm3", "granite":
	default:
		return fmt.Errorf("modelgen: unsupported architecture %q (want llama, qwen2, qwen3, smollm3 or granite)", c.Arch)
	}
	if err := c.validateGranite(); err != nil {
		return err
	}
	if err := c.Vocab.Validate(); err != nil {
		return err
	}
	if c.NEmbd <= 0 || c.NLayer <= 0 || c.NHead <= 0 || c.NHeadKV <= 0 || c.NFF <= 0 || c.NCtx <= 0 {
		return fmt.Errorf("modelgen: NEmbd %d, NLayer %d, NHead %d, NHeadKV %d, NFF %d and NCtx %d must be positive",
			c.NEmbd, c.NLayer, c.NHead, c.NHeadKV, c.NFF, c.NCtx)
	}
	if c.NEmbd%c.NHead != 0 {
		return fmt.Errorf("modelgen: NEmbd %d is not a multiple of NHead %d", c.NEmbd, c.NHead)
	}
	if (c.NEmbd/c.NHead)%2 != 0 {
		return fmt.Errorf("modelgen: head size %d must be even for RoPE", c.NEmbd/c.NHead)
	}
	if c.NHead%c.NHeadKV != 0 {
		return fmt.Errorf("modelgen: NHead %d is not a multiple of NHeadKV %d", c.NHead, c.NHeadKV)
	}
	for _, t := range []struct {
		name string
		typ  gguf.Type
	}{{"WeightType", c.WeightType}, {"EmbedType", c.EmbedType}, {"OutputType", c.OutputType}} {
		if !encodable(t.typ) {
			return fmt.Errorf("modelgen: %s %s is not supported (use F32, F16, Q8_0 or Q4_0)", t.name, t.typ)
		}
		if t.typ.BlockSize() > 1 && (c.NEmbd%int(t.typ.BlockSize()) != 0 || (t.name == "WeightType" && c.NFF%int(t.typ.BlockSize()) != 0)) {
			return fmt.Errorf("modelgen: %s %s needs NEmbd (%d) and NFF (%d) to be multiples of %d", t.name, t.typ, c.NEmbd, c.NFF, t.typ.BlockSize())
		}
	}
	if c.InitStd < 0 || math.IsNaN(float64(c.InitStd)) {
		return fmt.Errorf("modelgen: InitStd %g must be >= 0", c.InitStd)
	}
	if c.RopeScaling != nil {
		if c.Arch != "llama" {
			// llama.cpp loads rope_freqs.weight for llama only (of these two);
			// an unused tensor fails the load.
			return fmt.Errorf("modelgen: RopeScaling (rope_freqs.weight) needs arch llama, not %q", c.Arch)
		}
		if err := c.RopeScaling.withDefaults().validate(); err != nil {
			return err
		}
	}
	return nil
}

// tensorSpec is one tensor of the generated model.
type tensorSpec struct {
	name  string
	typ   gguf.Type
	shape []uint64 // ggml order: [n_in, n_out] for matrices
	ones  bool     // norm weights: all 1
	// values, if set, are the tensor's exact contents (rope_freqs.weight).
	values []float32
}

// tensors lists the model's tensors in llama.cpp's conventional order.
func (c LlamaConfig) tensors() []tensorSpec {
	e, v, ff := uint64(c.NEmbd), uint64(c.Vocab.Len()), uint64(c.NFF)
	kv := uint64(c.NEmbd / c.NHead * c.NHeadKV)
	var ts []tensorSpec
	if c.RopeScaling != nil {
		// First, as convert_hf_to_gguf.py yields its generated tensors first.
		f := Llama3RopeFactors(c.NEmbd/c.NHead, float64(c.RopeFreqBase), *c.RopeScaling)
		ts = append(ts, tensorSpec{name: "rope_freqs.weight", typ: gguf.TypeF32, shape: []uint64{uint64(len(f))}, values: f})
	}
	ts = append(ts, tensorSpec{name: "token_embd.weight", typ: c.EmbedType, shape: []uint64{e, v}})
	for i := 0; i < c.NLayer; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		ts = append(ts,
			tensorSpec{name: p + "attn_norm.weight", typ: gguf.TypeF32, shape: []uint64{e}, ones: true},
			tensorSpec{name: p + "attn_q.weight", typ: c.WeightType, shape: []uint64{e, e}},
			tensorSpec{name: p + "attn_k.weight", typ: c.WeightType, shape: []uint64{e, kv}},
			tensorSpec{name: p + "attn_v.weight", typ: c.WeightType, shape: []uint64{e, kv}},
		)
		if c.Arch == "qwen2" {
			ts = append(ts,
				tensorSpec{name: p + "attn_q.bias", typ: gguf.TypeF32, shape: []uint64{e}},
				tensorSpec{name: p + "attn_k.bias", typ: gguf.TypeF32, shape: []uint64{kv}},
				tensorSpec{name: p + "attn_v.bias", typ: gguf.TypeF32, shape: []uint64{kv}},
			)
		}
		if c.Arch == "qwen3" {
			hd := uint64(c.NEmbd / c.NHead)
			ts = append(ts,
				tensorSpec{name: p + "attn_q_norm.weight", typ: gguf.TypeF32, shape: []uint64{hd}, ones: true},
				tensorSpec{name: p + "attn_k_norm.weight", typ: gguf.TypeF32, shape: []uint64{hd}, ones: true},
			)
		}
		ts = append(ts,
			tensorSpec{name: p + "attn_output.weight", typ: c.WeightType, shape: []uint64{e, e}},
			tensorSpec{name: p + "ffn_norm.weight", typ: gguf.TypeF32, shape: []uint64{e}, ones: true},
			tensorSpec{name: p + "ffn_gate.weight", typ: c.WeightType, shape: []uint64{e, ff}},
			tensorSpec{name: p + "ffn_up.weight", typ: c.WeightType, shape: []uint64{e, ff}},
			tensorSpec{name: p + "ffn_down.weight", typ: c.WeightType, shape: []uint64{ff, e}},
		)
	}
	ts = append(ts, tensorSpec{name: "output_norm.weight", typ: gguf.TypeF32, shape: []uint64{e}, ones: true})
	if !c.TiedOutput {
		ts = append(ts, tensorSpec{name: "output.weight", typ: c.OutputType, shape: []uint64{e, v}})
	}
	return ts
}

// Params returns the number of parameters (elements of all tensors) of the
// model WriteLlama writes for this configuration, or 0 if the configuration
// is invalid (WriteLlama would return an error).
func (c LlamaConfig) Params() int64 {
	c = c.withDefaults()
	if c.validate() != nil {
		return 0
	}
	var n int64
	for _, t := range c.tensors() {
		n += gguf.TensorInfo{Shape: t.shape}.Elements()
	}
	return n
}

// fileType returns general.file_type (enum llama_ftype) for the weight type.
func fileType(t gguf.Type) uint32 {
	switch t {
	case gguf.TypeF16:
		return 1 // LLAMA_FTYPE_MOSTLY_F16
	case gguf.TypeQ4_0:
		return 2 // LLAMA_FTYPE_MOSTLY_Q4_0
	case gguf.TypeQ8_0:
		return 7 // LLAMA_FTYPE_MOSTLY_Q8_0
	}
	return 0 // LLAMA_FTYPE_ALL_F32
}

// WriteLlama writes a randomly initialized model for cfg to path, with every
// metadata key and tensor llama.cpp needs to load the architecture. Tensors
// are generated and written row block by row block, so memory use stays
// small even for ~100M-parameter models.
//
// Weights: norm weights are exactly 1; matrices and qwen2 biases are
// approximately N(0, std²) with std = InitStd or 1/sqrt(n_in).
func WriteLlama(path string, cfg LlamaConfig) error {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return err
	}
	a := c.Arch
	u32 := func(n int) uint32 { return uint32(n) }
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: a},
		{Key: "general.name", Value: c.Name},
		{Key: "general.file_type", Value: fileType(c.WeightType)},
		{Key: a + ".vocab_size", Value: u32(c.Vocab.Len())},
		{Key: a + ".context_length", Value: u32(c.NCtx)},
		{Key: a + ".embedding_length", Value: u32(c.NEmbd)},
		{Key: a + ".block_count", Value: u32(c.NLayer)},
		{Key: a + ".feed_forward_length", Value: u32(c.NFF)},
		{Key: a + ".rope.dimension_count", Value: u32(c.NEmbd / c.NHead)},
		{Key: a + ".attention.head_count", Value: u32(c.NHead)},
		{Key: a + ".attention.head_count_kv", Value: u32(c.NHeadKV)},
		{Key: a + ".attention.layer_norm_rms_epsilon", Value: c.RMSEps},
		{Key: a + ".rope.freq_base", Value: c.RopeFreqBase},
	}
	kvs = append(kvs, c.Vocab.kvs(!c.NoAddBOS)...)
	if c.ChatTemplate != "" {
		kvs = append(kvs, gguf.KV{Key: "tokenizer.chat_template", Value: c.ChatTemplate})
	}
	if c.Granite != nil {
		kvs = append(kvs, c.Granite.kvs(a)...)
	}
	return writeModel(path, kvs, c.tensors(), c.Seed, c.InitStd)
}

// kvs are v's tokenizer keys (an SPM-style "llama" vocabulary), addBOS its
// tokenizer.ggml.add_bos_token.
func (v Vocab) kvs(addBOS bool) []gguf.KV {
	return []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: v.Tokens},
		{Key: "tokenizer.ggml.scores", Value: v.Scores},
		{Key: "tokenizer.ggml.token_type", Value: v.Types},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(v.BOS)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(v.EOS)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(v.UNK)},
		{Key: "tokenizer.ggml.add_bos_token", Value: addBOS},
		{Key: "tokenizer.ggml.add_eos_token", Value: false},
	}
}

// writeModel writes a model file of metadata kvs and random tensors: each
// seeded by seed and its name, matrices N(0, std²) with std = initStd or,
// when that is 0, 1/sqrt(n_in) (randomTensor).
func writeModel(path string, kvs []gguf.KV, tensors []tensorSpec, seed uint64, initStd float32) error {
	w := gguf.NewWriter()
	for _, kv := range kvs {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			return fmt.Errorf("modelgen: %w", err)
		}
	}
	for _, t := range tensors {
		std := float64(initStd)
		if std == 0 {
			std = 1 / math.Sqrt(float64(t.shape[0]))
		}
		if err := w.AddTensorFunc(t.name, t.typ, t.shape, randomTensor(seed, t, std)); err != nil {
			return fmt.Errorf("modelgen: %w", err)
		}
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("modelgen: %w", err)
	}
	return nil
}

// chunkElems bounds the floats generated at once: a few MiB whatever the
// tensor size.
const chunkElems = 1 << 20

// randomTensor returns a function writing t's data: ones for norms, zeros
// for std < 0 (used for LoRA B), random values otherwise. Rows are generated
// in order from a generator seeded by the tensor name.
func randomTensor(seed uint64, t tensorSpec, std float64) func(io.Writer) error {
	return func(out io.Writer) error {
		row := int(t.shape[0])
		rows := 1
		for _, d := range t.shape[1:] {
			rows *= int(d)
		}
		per := max(1, chunkElems/row) // whole rows per chunk, so blocks never straddle chunks
		g := newNormal(seed, t.name)
		buf := make([]float32, min(per, rows)*row)
		for done := 0; done < rows; {
			n := min(per, rows-done)
			x := buf[:n*row]
			switch {
			case t.values != nil:
				copy(x, t.values[done*row:(done+n)*row])
			case t.ones:
				for i := range x {
					x[i] = 1
				}
			case std < 0:
				clear(x)
			default:
				g.fill(x, std)
			}
			b, err := gguf.Encode(t.typ, x)
			if err != nil {
				return err
			}
			if _, err := out.Write(b); err != nil {
				return err
			}
			done += n
		}
		return nil
	}
}
