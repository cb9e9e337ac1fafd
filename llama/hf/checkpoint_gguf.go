package hf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// CheckpointOptions tune ConvertCheckpoint.
type CheckpointOptions struct {
	// Type is the output type: "f32", "f16" (the default, as
	// convert_hf_to_gguf.py's) or any type Quantize accepts ("q8_0",
	// "q4_k_m", ...). F32 and F16 are written here; other types are written
	// as a lossless F32/F16 GGUF first and then converted by Quantize.
	Type string
	// Name is general.name; default the checkpoint directory's name.
	Name string
	// Quantize converts the GGUF model at in to typ at out (llama.Quantize:
	// this package is pure Go and has no quantizer of its own). It is needed
	// only for types other than f32 and f16.
	Quantize func(ctx context.Context, in, out, typ string) error
}

// CheckpointConversion summarizes a converted checkpoint.
type CheckpointConversion struct {
	// Architecture is config.json's (e.g. "LlamaForCausalLM") and Arch the
	// llama.cpp architecture written (e.g. "llama").
	Architecture, Arch string
	// Type is the output type.
	Type string
	// Tensors is the number of tensors written, Params their elements.
	Tensors int
	Params  int64
	// Permuted are the GGUF tensors whose rows were reordered for RoPE.
	Permuted []string
	// RopeFreqs says whether rope_freqs.weight was written (llama3 scaling).
	RopeFreqs bool
	// LongRoPE says whether rope_factors_long/short.weight were written
	// (Phi-3.5/4-mini's rope_scaling longrope).
	LongRoPE bool
	// TiedOutput says the checkpoint has no lm_head, so no output.weight
	// was written and llama.cpp reuses the token embedding.
	TiedOutput bool
	// VocabSize is the number of tokens.
	VocabSize int
}

// ckptTensor is one tensor to write: from a shard (src) or generated (data).
type ckptTensor struct {
	name  string // GGUF name
	src   string // HF name, "" when generated
	shard *Safetensors
	shape []uint64 // ggml order
	heads int      // > 0: rows permuted as LlamaModel.permute with this many heads
	data  []byte   // generated F32 data
	shift float32  // added to every element (Gemma's norms: shiftNorm)
}

// tensorRule is one HF tensor the architecture has.
type tensorRule struct {
	hf, gguf string
	shape    []int64 // torch order
	optional bool
	heads    int
	shift    float32 // added to every element (Gemma's norm_shift)
}

// checkpointRules lists the tensors of a checkpoint of cfg's architecture
// with the shapes config.json implies, in the order they are written, with
// llama.cpp's names (convert_hf_to_gguf.py's tensor map for the llama
// family).
func checkpointRules(cfg *CheckpointConfig, arch checkpointArch) []tensorRule {
	if arch.gemma {
		return gemmaRules(cfg, arch)
	}
	if arch.gguf == "phi3" {
		return phi3Rules(cfg)
	}
	h, ff, v := int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.VocabSize)
	q, kv, hd := int64(cfg.NumHeads*cfg.HeadDim), int64(cfg.NumKVHeads*cfg.HeadDim), int64(cfg.HeadDim)
	qHeads, kHeads := 0, 0
	if arch.permuteQK {
		qHeads, kHeads = cfg.NumHeads, cfg.NumKVHeads
	}
	rules := []tensorRule{{hf: "model.embed_tokens.weight", gguf: "token_embd.weight", shape: []int64{v, h}}}
	for l := 0; l < cfg.NumLayers; l++ {
		p, g := fmt.Sprintf("model.layers.%d.", l), fmt.Sprintf("blk.%d.", l)
		rules = append(rules,
			tensorRule{hf: p + "input_layernorm.weight", gguf: g + "attn_norm.weight", shape: []int64{h}},
			tensorRule{hf: p + "self_attn.q_proj.weight", gguf: g + "attn_q.weight", shape: []int64{q, h}, heads: qHeads},
			tensorRule{hf: p + "self_attn.k_proj.weight", gguf: g + "attn_k.weight", shape: []int64{kv, h}, heads: kHeads},
			tensorRule{hf: p + "self_attn.v_proj.weight", gguf: g + "attn_v.weight", shape: []int64{kv, h}},
		)
		// Qwen2 always has q/k/v biases; a llama with attention_bias has
		// them too (and an o_proj bias), permuted like their weights.
		if arch.qkvBias || arch.attnBias {
			opt := !arch.qkvBias
			rules = append(rules,
				tensorRule{hf: p + "self_attn.q_proj.bias", gguf: g + "attn_q.bias", shape: []int64{q}, heads: qHeads, optional: opt},
				tensorRule{hf: p + "self_attn.k_proj.bias", gguf: g + "attn_k.bias", shape: []int64{kv}, heads: kHeads, optional: opt},
				tensorRule{hf: p + "self_attn.v_proj.bias", gguf: g + "attn_v.bias", shape: []int64{kv}, optional: opt},
			)
		}
		if arch.qkNorm {
			rules = append(rules,
				tensorRule{hf: p + "self_attn.q_norm.weight", gguf: g + "attn_q_norm.weight", shape: []int64{hd}},
				tensorRule{hf: p + "self_attn.k_norm.weight", gguf: g + "attn_k_norm.weight", shape: []int64{hd}},
			)
		}
		rules = append(rules, tensorRule{hf: p + "self_attn.o_proj.weight", gguf: g + "attn_output.weight", shape: []int64{h, q}})
		if arch.attnBias {
			rules = append(rules, tensorRule{hf: p + "self_attn.o_proj.bias", gguf: g + "attn_output.bias", shape: []int64{h}, optional: true})
		}
		rules = append(rules,
			tensorRule{hf: p + "post_attention_layernorm.weight", gguf: g + "ffn_norm.weight", shape: []int64{h}},
			tensorRule{hf: p + "mlp.gate_proj.weight", gguf: g + "ffn_gate.weight", shape: []int64{ff, h}},
			tensorRule{hf: p + "mlp.up_proj.weight", gguf: g + "ffn_up.weight", shape: []int64{ff, h}},
			tensorRule{hf: p + "mlp.down_proj.weight", gguf: g + "ffn_down.weight", shape: []int64{h, ff}},
		)
	}
	return append(rules,
		tensorRule{hf: "model.norm.weight", gguf: "output_norm.weight", shape: []int64{h}},
		// With tied embeddings the checkpoint has no lm_head and llama.cpp
		// reuses token_embd; without, lm_head is required.
		tensorRule{hf: "lm_head.weight", gguf: "output.weight", shape: []int64{v, h}, optional: cfg.TieWordEmbeddings},
	)
}

// planCheckpoint maps the checkpoint's tensors to GGUF tensors and checks
// them against config.json: every required tensor present with its shape,
// and no tensor left over that llama.cpp would not know.
func planCheckpoint(dir string, cfg *CheckpointConfig, shards *checkpointShards) ([]ckptTensor, error) {
	arch := checkpointArchs[cfg.Architecture]
	used := map[string]bool{}
	plan := phi3RopeFactors(cfg) // generated first, as the script yields them
	for _, r := range checkpointRules(cfg, arch) {
		st, ok := shards.where[r.hf]
		if !ok {
			if r.optional {
				continue
			}
			return nil, fmt.Errorf("hf: checkpoint %s: tensor %q (GGUF %s) is missing from %s", dir, r.hf, r.gguf, shards.source)
		}
		t, _ := st.Tensor(r.hf)
		if !equalShape(t.Shape, r.shape) {
			return nil, fmt.Errorf("hf: %s: tensor %q has shape %v, but %s implies %v", st.Path, r.hf, t.Shape, cfg.Path, r.shape)
		}
		used[r.hf] = true
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[len(shape)-1-i] = uint64(d)
		}
		plan = append(plan, ckptTensor{name: r.gguf, src: r.hf, shard: st, shape: shape, heads: r.heads, shift: r.shift})
		if r.gguf == "token_embd.weight" && cfg.RopeScaling != nil && cfg.RopeScaling.RopeType == "llama3" {
			base := cfg.RopeTheta
			if base == 0 {
				base = 10000 // the script's default for rope_theta
			}
			f := llama3RopeFactors(base, cfg.HeadDim, cfg.RopeScaling)
			plan = append(plan, ckptTensor{name: "rope_freqs.weight", shape: []uint64{uint64(len(f))}, data: gguf.EncodeF32(f)})
		}
	}
	for _, st := range shards.files {
		for _, t := range st.Tensors {
			// Old checkpoints store RoPE's inverse frequencies; the script
			// skips them, llama.cpp computes its own.
			if used[t.Name] || strings.HasSuffix(t.Name, ".rotary_emb.inv_freq") {
				continue
			}
			return nil, fmt.Errorf("hf: %s: tensor %q has no place in a llama.cpp %s model converted from %s", st.Path, t.Name, arch.gguf, cfg.Architecture)
		}
	}
	return plan, nil
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ConvertCheckpoint converts the Hugging Face checkpoint in dir (config.json,
// model.safetensors or the shards of model.safetensors.index.json,
// tokenizer.json, tokenizer_config.json) into a GGUF model at out, as
// llama.cpp's convert_hf_to_gguf.py does for LlamaForCausalLM (Llama-2,
// Llama-3.x, Mistral), Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM,
// Gemma3ForCausalLM (text-only; checkpoint_gemma.go), Phi3ForCausalLM
// (Phi-3.5-mini, Phi-4-mini: see checkpoint_phi3.go), SmolLM3ForCausalLM and
// GraniteForCausalLM (dense).
//
// Everything is validated before anything is written: the configuration,
// every shard header (a truncated shard is an error naming the file and the
// tensor), the index against the shards, each tensor's presence, shape and
// dtype (F32, F16 or BF16) and the tokenizer's size against the embedding.
// Errors name the file and the tensor or field.
//
// Weights: the Q/K rows of llama models (and smollm3, granite) are permuted for llama.cpp's RoPE
// (q with n_head, k with n_head_kv; their biases too); Qwen models use NEOX
// RoPE and keep HF's order, as do Gemma models, whose norms get the script's
// + 1 (Gemma's RMSNorm multiplies by 1 + w). rope_scaling llama3 adds rope_freqs.weight,
// linear writes rope.scaling.type/factor. A checkpoint without lm_head gets
// no output.weight. For f16, matrices are F16 and vectors (norms, biases,
// rope_freqs) F32, the script's rule. The output file appears atomically
// (temporary file, fsync, rename), also when Quantize makes it.
func ConvertCheckpoint(ctx context.Context, dir, out string, opts CheckpointOptions) (*CheckpointConversion, error) {
	cfg, err := ReadCheckpointConfig(dir)
	if err != nil {
		return nil, err
	}
	typ := strings.ToLower(opts.Type)
	if typ == "" {
		typ = "f16"
	}
	if typ != "f32" && typ != "f16" && opts.Quantize == nil {
		return nil, fmt.Errorf("hf: convert %s: type %q needs a quantizer (only f32 and f16 are written natively)", dir, opts.Type)
	}
	shards, err := readShards(dir)
	if err != nil {
		return nil, err
	}
	plan, err := planCheckpoint(dir, cfg, shards)
	if err != nil {
		return nil, err
	}
	tok, err := ReadTokenizer(dir)
	if err != nil {
		return nil, err
	}
	if tok.Len() != cfg.VocabSize {
		return nil, fmt.Errorf("hf: checkpoint %s: the tokenizer has %d tokens but %s has vocab_size %d (the rows of model.embed_tokens.weight)",
			dir, tok.Len(), cfg.Path, cfg.VocabSize)
	}
	arch := checkpointArchs[cfg.Architecture]
	conv := &CheckpointConversion{Architecture: cfg.Architecture, Arch: arch.gguf, Type: typ, VocabSize: tok.Len(), TiedOutput: true}

	// The file written here: the output itself for f32/f16, else a lossless
	// intermediate for the quantizer (F16 when every matrix is F16 already,
	// else F32, so BF16 and F32 weights are never rounded twice).
	native := typ
	if typ != "f32" && typ != "f16" {
		native = "f16"
		for _, t := range plan {
			if t.shard != nil && len(t.shape) == 2 {
				if st, _ := t.shard.Tensor(t.src); st.DType != F16 {
					native = "f32"
				}
			}
		}
	}
	name := opts.Name
	if name == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("hf: convert %s: %w", dir, err)
		}
		name = filepath.Base(abs)
	}
	w := gguf.NewWriter()
	if err := setCheckpointKVs(w, cfg, arch, name, native); err != nil {
		return nil, err
	}
	if err := tok.SetGGUF(w); err != nil {
		return nil, err
	}

	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, st := range shards.files {
		f, err := os.Open(st.Path)
		if err != nil {
			return nil, fmt.Errorf("hf: convert: %w", err)
		}
		files[st.Path] = f
	}
	for _, t := range plan {
		outType := gguf.TypeF32
		if native == "f16" && len(t.shape) == 2 {
			outType = gguf.TypeF16
		}
		if t.heads > 0 {
			conv.Permuted = append(conv.Permuted, t.name)
		}
		switch t.name {
		case "rope_freqs.weight":
			conv.RopeFreqs = true
		case "rope_factors_long.weight":
			conv.LongRoPE = true
		case "output.weight":
			conv.TiedOutput = false
		}
		conv.Tensors++
		conv.Params += gguf.TensorInfo{Shape: t.shape}.Elements()
		if err := w.AddTensorFunc(t.name, outType, t.shape, func(dst io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			b, err := t.convert(files, outType)
			if err != nil {
				return err
			}
			_, err = dst.Write(b)
			return err
		}); err != nil {
			return nil, fmt.Errorf("hf: convert %s: %w", dir, err)
		}
	}

	if native == typ {
		if err := w.WriteFile(out); err != nil {
			return nil, fmt.Errorf("hf: convert %s: %w", dir, err)
		}
		return conv, nil
	}
	if err := writeQuantized(ctx, w, out, typ, opts.Quantize); err != nil {
		return nil, fmt.Errorf("hf: convert %s: %w", dir, err)
	}
	return conv, nil
}

// convert reads the tensor, permutes its rows if needed and converts it to
// typ (F32 or F16).
func (t ckptTensor) convert(files map[string]*os.File, typ gguf.Type) ([]byte, error) {
	if t.data != nil {
		return t.data, nil
	}
	b, err := t.shard.ReadData(files[t.shard.Path], t.src)
	if err != nil {
		return nil, err
	}
	st, _ := t.shard.Tensor(t.src)
	if t.heads > 0 {
		rows := int(st.Shape[0])
		perm, err := qkPermutation(rows, t.heads)
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", t.shard.Path, t.src, err)
		}
		b = permuteRows(b, perm, false)
	}
	src, _ := st.DType.GGUFType()
	if t.shift != 0 {
		if b, src, err = shiftNorm(b, src, t.shift, int(st.Elements())); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", t.shard.Path, t.src, err)
		}
	}
	if src == typ {
		return b, nil
	}
	x, err := gguf.Dequantize(src, b, int(st.Elements()))
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %q: %w", t.shard.Path, t.src, err)
	}
	return gguf.Encode(typ, x)
}

// setCheckpointKVs writes the general and architecture keys, with the
// names and types convert_hf_to_gguf.py (TextModel and LlamaModel
// set_gguf_parameters) writes and llama.cpp reads.
func setCheckpointKVs(w *gguf.Writer, cfg *CheckpointConfig, arch checkpointArch, name, native string) error {
	a := arch.gguf
	fileType := uint32(0) // LLAMA_FTYPE_ALL_F32
	if native == "f16" {
		fileType = 1 // LLAMA_FTYPE_MOSTLY_F16
	}
	if arch.gemma {
		return setKVs(w, gemmaKVs(cfg, arch, name, fileType))
	}
	if a == "phi3" {
		return setKVs(w, phi3KVs(cfg, name, fileType))
	}
	u := func(n int) uint32 { return uint32(n) }
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: a},
		{Key: "general.name", Value: name},
		{Key: a + ".block_count", Value: u(cfg.NumLayers)},
		{Key: a + ".context_length", Value: u(cfg.MaxPositions)},
		{Key: a + ".embedding_length", Value: u(cfg.HiddenSize)},
		{Key: a + ".feed_forward_length", Value: u(cfg.IntermediateSize)},
		{Key: a + ".attention.head_count", Value: u(cfg.NumHeads)},
		{Key: a + ".attention.head_count_kv", Value: u(cfg.NumKVHeads)},
	}
	if cfg.RopeTheta != 0 {
		kvs = append(kvs, gguf.KV{Key: a + ".rope.freq_base", Value: float32(cfg.RopeTheta)})
	}
	kvs = append(kvs, gguf.KV{Key: a + ".attention.layer_norm_rms_epsilon", Value: float32(cfg.RMSNormEps)})
	if cfg.HeadDimSet {
		kvs = append(kvs,
			gguf.KV{Key: a + ".attention.key_length", Value: u(cfg.HeadDim)},
			gguf.KV{Key: a + ".attention.value_length", Value: u(cfg.HeadDim)})
	}
	kvs = append(kvs, gguf.KV{Key: "general.file_type", Value: fileType})
	if arch.vocabAndRopeDim {
		kvs = append(kvs,
			gguf.KV{Key: a + ".vocab_size", Value: u(cfg.VocabSize)},
			gguf.KV{Key: a + ".rope.dimension_count", Value: u(cfg.HeadDim)})
	}
	if rs := cfg.RopeScaling; rs != nil && rs.RopeType == "linear" {
		kvs = append(kvs,
			gguf.KV{Key: a + ".rope.scaling.type", Value: "linear"},
			gguf.KV{Key: a + ".rope.scaling.factor", Value: float32(*rs.Factor)})
	}
	if arch.kvs != nil {
		kvs = append(kvs, arch.kvs(cfg, a)...)
	}
	return setKVs(w, kvs)
}

// setKVs sets each key of kvs on w.
func setKVs(w *gguf.Writer, kvs []gguf.KV) error {
	for _, kv := range kvs {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			return fmt.Errorf("hf: convert: %w", err)
		}
	}
	return nil
}

// writeQuantized writes w to a temporary file beside out, quantizes it into
// a second temporary file, checks and syncs that and renames it to out, so
// out is either the old file or the whole new one.
func writeQuantized(ctx context.Context, w *gguf.Writer, out, typ string, quantize func(ctx context.Context, in, out, typ string) error) (err error) {
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	tmp := func(suffix string) (string, error) {
		f, err := os.CreateTemp(dir, "."+base+suffix)
		if err != nil {
			return "", err
		}
		f.Close()
		return f.Name(), nil
	}
	inPath, err := tmp(".src-*.gguf")
	if err != nil {
		return err
	}
	defer os.Remove(inPath)
	qPath, err := tmp(".quant-*.gguf")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(qPath)
		}
	}()
	if err := w.WriteFile(inPath); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := quantize(ctx, inPath, qPath, typ); err != nil {
		return fmt.Errorf("quantize to %s: %w", typ, err)
	}
	if _, err := gguf.Read(qPath); err != nil {
		return fmt.Errorf("the quantizer's output: %w", err)
	}
	f, err := os.OpenFile(qPath, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := errors.Join(f.Chmod(0o644), f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(qPath, out); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
