package hftest

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/modelgen"
)

// Checkpoint describes a small model made in code and written out as a
// Hugging Face checkpoint, for tests of the HF → GGUF conversion.
type Checkpoint struct {
	// Name names the case in tests.
	Name string
	// Arch is the llama.cpp architecture of the reference model (llama,
	// qwen2, qwen3, gemma2, gemma3, phi3, smollm3 or granite) and HFArch config.json's
	// "architectures" entry.
	Arch, HFArch string
	// Tokenizer is a directory with a real tokenizer.json and
	// tokenizer_config.json (one of ../shared/data/tokenizers), copied into
	// the checkpoint.
	Tokenizer string
	// VocabSize is config.json's vocab_size; 0 means the tokenizer's size.
	// A larger one pads the vocabulary, as Qwen's configs do.
	VocabSize int
	// NEmbd, NLayer, NHead, NHeadKV and NFF size the model.
	NEmbd, NLayer, NHead, NHeadKV, NFF int
	// Tied leaves out lm_head (tie_word_embeddings true).
	Tied bool
	// RopeScaling is written as config.json's rope_scaling, and RopeFreqs,
	// if set, added to the reference as rope_freqs.weight (what llama3
	// scaling must convert to).
	RopeScaling map[string]any
	RopeFreqs   []float32
	// Shards > 1 splits the weights into that many files with a
	// model.safetensors.index.json; otherwise model.safetensors.
	Shards int
	// DType is the safetensors type of the matrices (F32 by default);
	// vectors are written as F32. The reference holds the same values (the
	// matrices rounded through DType) as F32.
	DType hf.DType
	// Config are extra config.json keys (bos_token_id, ...).
	Config map[string]any
	// Seed selects the weights.
	Seed uint64
	// HeadDim, SlidingWindow, AttnSoftcap and FinalSoftcap are Gemma's
	// head_dim, sliding_window, attn_logit_softcapping and
	// final_logit_softcapping (checkpoint_gemma.go).
	HeadDim, SlidingWindow    int
	AttnSoftcap, FinalSoftcap float64
	// PartialRotary (partial_rotary_factor) and LongRoPE (rope_scaling
	// longrope, with original_max_position_embeddings) shape a phi3 model;
	// see checkpoint_phi3.go.
	PartialRotary float64
	LongRoPE      *modelgen.LongRoPE
	// Granite, with Arch granite, are the multipliers: config.json's
	// embedding_multiplier, ... and the reference's granite.* keys.
	Granite *modelgen.GraniteScales
}

// PermutesQK says whether the conversion reorders the Q/K rows: the
// architectures with llama.cpp's normal RoPE, converted by LlamaModel.
func (c Checkpoint) PermutesQK() bool {
	return c.Arch == "llama" || c.Arch == "smollm3" || c.Arch == "granite"
}

// hfNames maps GGUF tensor names of a llama-family block (after "blk.N.")
// to HF module names (after "model.layers.N."); written out here on its own,
// apart from the converter's table, so a wrong entry in one shows up.
var hfNames = map[string]string{
	"attn_norm.weight":   "input_layernorm.weight",
	"attn_q.weight":      "self_attn.q_proj.weight",
	"attn_k.weight":      "self_attn.k_proj.weight",
	"attn_v.weight":      "self_attn.v_proj.weight",
	"attn_q.bias":        "self_attn.q_proj.bias",
	"attn_k.bias":        "self_attn.k_proj.bias",
	"attn_v.bias":        "self_attn.v_proj.bias",
	"attn_q_norm.weight": "self_attn.q_norm.weight",
	"attn_k_norm.weight": "self_attn.k_norm.weight",
	"attn_output.weight": "self_attn.o_proj.weight",
	"ffn_norm.weight":    "post_attention_layernorm.weight",
	"ffn_gate.weight":    "mlp.gate_proj.weight",
	"ffn_up.weight":      "mlp.up_proj.weight",
	"ffn_down.weight":    "mlp.down_proj.weight",
}

// HFName returns the Hugging Face name of a GGUF tensor of the llama family.
func HFName(name string) (string, bool) {
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight", true
	case "output_norm.weight":
		return "model.norm.weight", true
	case "output.weight":
		return "lm_head.weight", true
	}
	var l int
	var rest string
	if n, _ := fmt.Sscanf(name, "blk.%d.", &l); n != 1 {
		return "", false
	}
	rest = strings.TrimPrefix(name, fmt.Sprintf("blk.%d.", l))
	h, ok := hfNames[rest]
	if !ok {
		return "", false
	}
	return fmt.Sprintf("model.layers.%d.%s", l, h), true
}

// WriteCheckpoint makes the model c describes and writes it twice under dir:
// as the reference GGUF dir/reference.gguf (what converting must give) and
// as a Hugging Face checkpoint in dir/hf (config.json, safetensors, the
// tokenizer files). It returns both paths.
//
// The reference is a modelgen model whose tokenizer keys are replaced by
// the real tokenizer's (as hf.ReadTokenizer converts it) and whose norm
// weights are random around 1 (modelgen's are exactly 1, which would hide a
// swapped norm). The checkpoint holds the same weights in HF names and
// orientation, with the Q/K rows of llama models in HF's order (the
// inverse of convert_hf_to_gguf.py's permutation).
func WriteCheckpoint(t testing.TB, dir string, c Checkpoint) (refPath, hfDir string) {
	t.Helper()
	hfDir = filepath.Join(dir, "hf")
	if err := os.MkdirAll(hfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(c.Tokenizer, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hfDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c.DType == "" {
		c.DType = hf.F32
	}
	if c.NHeadKV == 0 {
		c.NHeadKV = c.NHead
	}
	// Without a vocab_size, the tokenizer's own size (read before there is
	// a config.json); then the tokenizer as the config's vocab_size pads it.
	vocab := c.VocabSize
	if vocab == 0 {
		tok, err := hf.ReadTokenizer(hfDir)
		if err != nil {
			t.Fatal(err)
		}
		vocab = tok.Len()
	}
	writeJSONFile(t, filepath.Join(hfDir, hf.CheckpointConfigFile), c.config(vocab))
	tok, err := hf.ReadTokenizer(hfDir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Len() != vocab {
		t.Fatalf("tokenizer has %d tokens with vocab_size %d", tok.Len(), vocab)
	}

	genPath := filepath.Join(dir, "modelgen.gguf")
	words := make([]string, vocab)
	for i := range words {
		words[i] = fmt.Sprintf("t%d", i)
	}
	v := modelgen.Vocab{Tokens: words, Scores: make([]float32, vocab), Types: make([]int32, vocab), BOS: 0, EOS: 1, UNK: 2}
	for i := range v.Types {
		v.Types[i] = modelgen.TokenNormal
	}
	if isGemma(c.Arch) {
		err = modelgen.WriteGemma(genPath, c.gemmaModel(v))
	} else if c.Arch == "phi3" {
		err = modelgen.WritePhi3(genPath, c.phi3Model(v))
	} else {
		err = modelgen.WriteLlama(genPath, modelgen.LlamaConfig{
			Arch: c.Arch, Vocab: v, NEmbd: c.NEmbd, NLayer: c.NLayer, NHead: c.NHead, NHeadKV: c.NHeadKV,
			NFF: c.NFF, NCtx: 512, TiedOutput: c.Tied, Seed: c.Seed, RopeFreqBase: 10000, RMSEps: 1e-5, Granite: c.Granite,
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	gen, err := gguf.Read(genPath)
	if err != nil {
		t.Fatal(err)
	}

	// The reference: modelgen's keys without its tokenizer, the real one's.
	w := gguf.NewWriter()
	for _, kv := range gen.KVs {
		if !strings.HasPrefix(kv.Key, "tokenizer.") {
			must(t, w.Set(kv.Key, kv.Value))
		}
	}
	must(t, tok.SetGGUF(w))
	rng := rand.New(rand.NewPCG(c.Seed, 99))
	var hfTensors []hf.TensorData
	for _, ti := range gen.Tensors {
		x, err := gguf.Dequantize(ti.Type, TensorData(t, gen, ti.Name), int(ti.Elements()))
		if err != nil {
			t.Fatal(err)
		}
		dtype := hf.F32
		hx := x // the checkpoint's values
		switch {
		case strings.HasSuffix(ti.Name, "norm.weight") && isGemma(c.Arch):
			// Gemma's RMSNorm multiplies by 1 + w: the checkpoint holds w, the
			// reference 1 + w added in float32, as the converter adds it.
			hx = make([]float32, len(x))
			for i := range x {
				hx[i] = float32(0.2 * rng.NormFloat64())
				x[i] = hx[i] + 1
			}
		case strings.HasSuffix(ti.Name, "norm.weight"):
			for i := range x {
				x[i] = float32(1 + 0.2*rng.NormFloat64())
			}
		case len(ti.Shape) == 2:
			dtype = c.DType
			x = roundThrough(t, x, dtype)
		}
		must(t, w.AddTensor(ti.Name, gguf.TypeF32, ti.Shape, gguf.EncodeF32(x)))
		if ti.Name == "token_embd.weight" && c.RopeFreqs != nil {
			must(t, w.AddTensor("rope_freqs.weight", gguf.TypeF32, []uint64{uint64(len(c.RopeFreqs))}, gguf.EncodeF32(c.RopeFreqs)))
		}
		if strings.HasPrefix(ti.Name, "rope_factors_") {
			continue // generated from config.json's rope_scaling, no HF tensor
		}
		name, ok := hfNameFor(c.Arch, ti.Name)
		if !ok {
			t.Fatalf("no HF name for %s", ti.Name)
		}
		shape := make([]int64, len(ti.Shape))
		for i, d := range ti.Shape {
			shape[len(shape)-1-i] = int64(d)
		}
		if c.PermutesQK() && (strings.HasSuffix(ti.Name, ".attn_q.weight") || strings.HasSuffix(ti.Name, ".attn_k.weight")) {
			heads := c.NHead
			if strings.HasSuffix(ti.Name, ".attn_k.weight") {
				heads = c.NHeadKV
			}
			hx = Unpermute(x, int(shape[0]), int(shape[1]), heads)
		}
		hfTensors = append(hfTensors, hf.TensorData{Name: name, DType: dtype, Shape: shape, Data: encodeDType(t, hx, dtype)})
	}
	refPath = filepath.Join(dir, "reference.gguf")
	must(t, w.WriteFile(refPath))
	writeShards(t, hfDir, hfTensors, c.Shards)
	return refPath, hfDir
}

// config returns config.json with the keys transformers writes for the
// architecture.
func (c Checkpoint) config(vocab int) map[string]any {
	m := map[string]any{
		"architectures":           []string{c.HFArch},
		"attention_dropout":       0.0,
		"hidden_act":              "silu",
		"hidden_size":             c.NEmbd,
		"initializer_range":       0.02,
		"intermediate_size":       c.NFF,
		"max_position_embeddings": 512,
		"num_attention_heads":     c.NHead,
		"num_hidden_layers":       c.NLayer,
		"num_key_value_heads":     c.NHeadKV,
		"rms_norm_eps":            1e-5,
		"rope_scaling":            nil,
		"rope_theta":              10000.0,
		"tie_word_embeddings":     c.Tied,
		"torch_dtype":             map[hf.DType]string{hf.F32: "float32", hf.F16: "float16", hf.BF16: "bfloat16"}[c.DType],
		"transformers_version":    "4.51.3",
		"use_cache":               true,
		"vocab_size":              vocab,
	}
	switch c.Arch {
	case "llama":
		m["model_type"] = "llama"
		m["attention_bias"] = false
		m["mlp_bias"] = false
		m["pretraining_tp"] = 1
		if c.HFArch == "MistralForCausalLM" {
			m["model_type"] = "mistral"
			m["sliding_window"] = 4096
			delete(m, "attention_bias")
			delete(m, "mlp_bias")
			delete(m, "pretraining_tp")
		}
	case "qwen2":
		m["model_type"] = "qwen2"
		m["max_window_layers"] = c.NLayer
		m["sliding_window"] = 512
		m["use_sliding_window"] = false
	case "smollm3":
		// SmolLM3-3B's config.json: NoPE on every fourth layer (1 = RoPE).
		m["model_type"] = "smollm3"
		m["attention_bias"] = false
		m["mlp_bias"] = false
		m["no_rope_layer_interval"] = modelgen.SmolLM3NoRopeInterval
		m["no_rope_layers"] = modelgen.SmolLM3NoRopeLayers(c.NLayer)
		m["use_sliding_window"] = false
		m["sliding_window"] = nil
		m["max_window_layers"] = c.NLayer
		m["pretraining_tp"] = 2
	case "granite":
		m["model_type"] = "granite"
		m["attention_bias"] = false
		m["mlp_bias"] = false
		if g := c.Granite; g != nil {
			m["embedding_multiplier"] = g.EmbeddingMultiplier
			m["attention_multiplier"] = g.AttentionMultiplier
			m["residual_multiplier"] = g.ResidualMultiplier
			m["logits_scaling"] = g.LogitsScaling
		}
	case "qwen3":
		m["model_type"] = "qwen3"
		m["attention_bias"] = false
		m["head_dim"] = c.NEmbd / c.NHead
		m["max_window_layers"] = c.NLayer
		m["sliding_window"] = nil
		m["use_sliding_window"] = false
	case "gemma2", "gemma3":
		c.gemmaConfig(m)
	case "phi3":
		c.phi3Config(m)
	}
	if c.RopeScaling != nil {
		m["rope_scaling"] = c.RopeScaling
	}
	for k, v := range c.Config {
		m[k] = v
	}
	return m
}

// writeShards writes the tensors as model.safetensors, or split into n
// files named as transformers names them with the index it writes.
func writeShards(t testing.TB, dir string, ts []hf.TensorData, n int) {
	t.Helper()
	meta := map[string]string{"format": "pt"}
	if n <= 1 {
		must(t, hf.WriteSafetensors(filepath.Join(dir, hf.CheckpointWeightsFile), ts, meta))
		return
	}
	parts := make([][]hf.TensorData, n)
	weightMap := map[string]string{}
	var total int64
	for i, x := range ts {
		k := i * n / len(ts) // contiguous runs, in the order of the model
		parts[k] = append(parts[k], x)
		weightMap[x.Name] = fmt.Sprintf("model-%05d-of-%05d.safetensors", k+1, n)
		total += int64(len(x.Data))
	}
	for k, p := range parts {
		must(t, hf.WriteSafetensors(filepath.Join(dir, fmt.Sprintf("model-%05d-of-%05d.safetensors", k+1, n)), p, meta))
	}
	writeJSONFile(t, filepath.Join(dir, hf.CheckpointIndexFile), map[string]any{
		"metadata": map[string]any{"total_size": total}, "weight_map": weightMap,
	})
}

// roundThrough rounds x to the precision of d (F32: unchanged).
func roundThrough(t testing.TB, x []float32, d hf.DType) []float32 {
	t.Helper()
	if d == hf.F32 {
		return x
	}
	gt, _ := d.GGUFType()
	y, err := gguf.Dequantize(gt, encodeDType(t, x, d), len(x))
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// encodeDType encodes x as d, BF16 rounding to nearest even as PyTorch does.
func encodeDType(t testing.TB, x []float32, d hf.DType) []byte {
	t.Helper()
	switch d {
	case hf.F32:
		return gguf.EncodeF32(x)
	case hf.F16:
		return gguf.EncodeF16(x)
	case hf.BF16:
		out := make([]byte, 2*len(x))
		for i, v := range x {
			b := math.Float32bits(v)
			b += 0x7fff + (b>>16)&1
			out[2*i], out[2*i+1] = byte(b>>16), byte(b>>24)
		}
		return out
	}
	t.Fatalf("dtype %s", d)
	return nil
}

// ReadTensorF32 reads a tensor of a GGUF file as float32.
func ReadTensorF32(t testing.TB, f *gguf.File, name string) []float32 {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("%s has no tensor %s", f.Path, name)
	}
	x, err := gguf.Dequantize(ti.Type, TensorData(t, f, name), int(ti.Elements()))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func writeJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Llama3Factors is rope_freqs for llama3 scaling computed the plain way, in
// float64 (the formula of convert_hf_to_gguf.py, without its float32 steps).
func Llama3Factors(base float64, dim int, factor, low, high, old float64) []float32 {
	out := make([]float32, dim/2)
	for i := range out {
		freq := 1 / math.Pow(base, float64(2*i)/float64(dim))
		wl := 2 * math.Pi / freq
		switch {
		case wl < old/high:
			out[i] = 1
		case wl > old/low:
			out[i] = float32(factor)
		default:
			s := (old/wl - low) / (high - low)
			out[i] = float32(1 / ((1-s)/factor + s))
		}
	}
	return out
}

// CheckpointCases are the checkpoints the conversion is proved on: each
// architecture, GQA, sharding, tied embeddings, llama3 RoPE scaling, a
// padded vocabulary, and F32, F16 and BF16 weights, each with a real
// tokenizer of its family. tokenizers is ../shared/data/tokenizers.
func CheckpointCases(tokenizers string) []Checkpoint {
	return []Checkpoint{
		{ // Llama-2 style: SPM tokenizer, GQA, untied, two shards.
			Name: "llama-gqa-sharded", Arch: "llama", HFArch: "LlamaForCausalLM", Tokenizer: filepath.Join(tokenizers, "mistral-v0.1"),
			VocabSize: 32000, NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 96, Shards: 2, Seed: 1,
			Config: map[string]any{"bos_token_id": 1, "eos_token_id": 2},
		},
		{ // Mistral-7B-v0.1's layout, BF16 weights.
			Name: "mistral-bf16", Arch: "llama", HFArch: "MistralForCausalLM", Tokenizer: filepath.Join(tokenizers, "mistral-v0.1"),
			VocabSize: 32000, NEmbd: 32, NLayer: 1, NHead: 4, NHeadKV: 1, NFF: 64, DType: hf.BF16, Seed: 2,
			Config: map[string]any{"bos_token_id": 1, "eos_token_id": 2},
		},
		{ // Llama-3.2 style: byte-level BPE, tied embeddings, llama3 RoPE scaling.
			Name: "llama3-rope-tied", Arch: "llama", HFArch: "LlamaForCausalLM", Tokenizer: filepath.Join(tokenizers, "llama-3.1"),
			VocabSize: 128256, NEmbd: 32, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 64, Tied: true, DType: hf.BF16, Seed: 3,
			RopeScaling: map[string]any{"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
				"original_max_position_embeddings": 2048, "rope_type": "llama3"},
			RopeFreqs: Llama3Factors(10000, 8, 8, 1, 4, 2048),
			Config:    map[string]any{"bos_token_id": 128000, "eos_token_id": 128001},
		},
		{ // Qwen2.5 style: q/k/v biases, tied, vocabulary padded to 151936, F16.
			Name: "qwen2-bias-tied", Arch: "qwen2", HFArch: "Qwen2ForCausalLM", Tokenizer: filepath.Join(tokenizers, "qwen3"),
			VocabSize: 151936, NEmbd: 32, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 64, Tied: true, DType: hf.F16, Seed: 4,
			Config: map[string]any{"bos_token_id": 151643, "eos_token_id": 151643},
		},
		{ // Phi-4-mini style: fused qkv and gate_up, partial rotary 0.75,
			// tied, LongRoPE served (at llama.cpp's smallest context, 256)
			// above its original context 128: the long table.
			Name: "phi4-mini-longrope", Arch: "phi3", HFArch: "Phi3ForCausalLM", Tokenizer: filepath.Join(tokenizers, "qwen3"),
			VocabSize: 151936, NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 96, Tied: true, Seed: 6, PartialRotary: 0.75,
			LongRoPE: &modelgen.LongRoPE{OriginalContext: 128, Long: []float32{1, 1.5, 2.25, 4, 8.5, 16}, Short: []float32{1, 1.01, 1.02, 1.05, 1.1, 1.2}},
			Config:   map[string]any{"bos_token_id": 151643, "eos_token_id": 151645},
		},
		{ // Phi-3.5-mini style: SPM tokenizer with vocab_size padded (Phi-3.5's
			// 32064), full rotary, untied, LongRoPE served below its original
			// context 4096: the short table.
			Name: "phi3.5-mini-longrope", Arch: "phi3", HFArch: "Phi3ForCausalLM", Tokenizer: filepath.Join(tokenizers, "mistral-v0.1"),
			VocabSize: 32064, NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 4, NFF: 96, Shards: 2, Seed: 7,
			LongRoPE: &modelgen.LongRoPE{OriginalContext: 4096, Long: []float32{1, 1.2, 1.9, 3, 5.5, 9, 14, 20}, Short: []float32{1, 1.02, 1.03, 1.05, 1.08, 1.1, 1.2, 1.3}},
			Config:   map[string]any{"bos_token_id": 1, "eos_token_id": 32000},
		},
		{ // SmolLM3-3B style: Llama-3 tokenizer, tied, GQA 4:1, NoPE on layer 3.
			Name: "smollm3-nope-tied", Arch: "smollm3", HFArch: "SmolLM3ForCausalLM", Tokenizer: filepath.Join(tokenizers, "llama-3.1"),
			VocabSize: 128256, NEmbd: 32, NLayer: 4, NHead: 4, NHeadKV: 1, NFF: 64, Tied: true, DType: hf.BF16, Seed: 6,
			Config: map[string]any{"bos_token_id": nil, "eos_token_id": 128001},
		},
		{ // Granite-3 dense style: its four multipliers (granite-3.1-2b's), GQA, tied.
			Name: "granite-multipliers", Arch: "granite", HFArch: "GraniteForCausalLM", Tokenizer: filepath.Join(tokenizers, "mistral-v0.1"),
			VocabSize: 32000, NEmbd: 64, NLayer: 2, NHead: 8, NHeadKV: 2, NFF: 96, Tied: true, Seed: 7,
			Granite: &modelgen.GraniteScales{EmbeddingMultiplier: 12, AttentionMultiplier: 0.015625, ResidualMultiplier: 0.22, LogitsScaling: 8},
			Config:  map[string]any{"bos_token_id": 1, "eos_token_id": 2},
		},
		{ // Qwen3 style: q/k norms, head_dim, two shards.
			Name: "qwen3-qknorm-sharded", Arch: "qwen3", HFArch: "Qwen3ForCausalLM", Tokenizer: filepath.Join(tokenizers, "qwen3"),
			VocabSize: 151936, NEmbd: 32, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 64, Shards: 2, Seed: 5,
			Config: map[string]any{"bos_token_id": 151643, "eos_token_id": 151645},
		},
		{ // Gemma-2 style: head_dim 32 ≠ 32/2, GQA, soft-capping (Gemma-2's own caps), a
			// sliding window of 4 on layer 0, tied, BF16. The Gemma-3 tokenizer
			// stands in for Gemma-2's (the same SentencePiece family).
			Name: "gemma2-swa-bf16", Arch: "gemma2", HFArch: "Gemma2ForCausalLM", Tokenizer: filepath.Join(tokenizers, "gemma-3"),
			NEmbd: 32, NLayer: 2, NHead: 2, NHeadKV: 1, HeadDim: 32, NFF: 64, Tied: true, DType: hf.BF16, Seed: 6,
			SlidingWindow: 4, AttnSoftcap: 50, FinalSoftcap: 30,
			Config: map[string]any{"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0},
		},
		{ // Gemma-3 style: q/k norms, five sliding-window layers at RoPE base
			// 10000 and a global one at 1e6 with Gemma-3 4B's linear scaling,
			// tied, F16, two shards.
			Name: "gemma3-swa-sharded", Arch: "gemma3", HFArch: "Gemma3ForCausalLM", Tokenizer: filepath.Join(tokenizers, "gemma-3"),
			NEmbd: 32, NLayer: 6, NHead: 2, NHeadKV: 1, HeadDim: 32, NFF: 64, Tied: true, DType: hf.F16, Shards: 2, Seed: 7,
			SlidingWindow: 4, RopeScaling: map[string]any{"factor": 8.0, "rope_type": "linear"},
			Config: map[string]any{"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0},
		},
	}
}
