package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// File names of a Hugging Face model checkpoint directory (transformers'
// CONFIG_NAME, SAFE_WEIGHTS_NAME and SAFE_WEIGHTS_INDEX_NAME).
const (
	CheckpointConfigFile  = "config.json"
	CheckpointWeightsFile = "model.safetensors"
	CheckpointIndexFile   = "model.safetensors.index.json"
)

// checkpointArch is how one Hugging Face architecture (config.json
// "architectures") becomes a llama.cpp architecture, as convert_hf_to_gguf.py
// registers it. Only architectures checked against llama.cpp are listed.
type checkpointArch struct {
	// gguf is the llama.cpp architecture name (general.architecture).
	gguf string
	// permuteQK: the converter reorders the rows of the Q and K projections
	// (LlamaModel.permute), since llama.cpp's llama uses the normal RoPE
	// that rotates adjacent pairs while HF rotates halves; qwen2 and qwen3
	// use NEOX RoPE, HF's own layout.
	permuteQK bool
	// qkvBias: the q/k/v projections have bias vectors (Qwen2).
	qkvBias bool
	// qkNorm: the attention has per-head RMS norms on q and k (Qwen3).
	qkNorm bool
	// vocabAndRopeDim: LlamaModel.set_gguf_parameters also writes
	// <arch>.vocab_size and <arch>.rope.dimension_count; Qwen2Model does
	// not (llama.cpp takes the vocabulary size from the token list and the
	// RoPE dimension from the head size).
	vocabAndRopeDim bool
	// ropeScaling: rope_scaling types the converter handles for the
	// architecture ("linear", "llama3").
	ropeScaling []string
	// gemma: the Gemma-2/3 layout and keys (checkpoint_gemma.go).
	gemma bool
	// attnBias: attention_bias gives optional q/k/v/o biases
	// (LlamaModel's tensor map, which llama.cpp's llama and granite load).
	attnBias bool
	// config, if set, reads and checks the architecture's own config.json
	// keys (b is the file) into c.
	config func(c *CheckpointConfig, b []byte) error
	// kvs, if set, are the architecture's own metadata keys (a is its
	// llama.cpp name).
	kvs func(c *CheckpointConfig, a string) []gguf.KV
}

var checkpointArchs = map[string]checkpointArch{
	"LlamaForCausalLM":   {gguf: "llama", permuteQK: true, vocabAndRopeDim: true, ropeScaling: []string{"linear", "llama3"}, attnBias: true},
	"MistralForCausalLM": {gguf: "llama", permuteQK: true, vocabAndRopeDim: true, ropeScaling: []string{"linear", "llama3"}, attnBias: true},
	"Qwen2ForCausalLM":   {gguf: "qwen2", qkvBias: true},
	"Qwen3ForCausalLM":   {gguf: "qwen3", qkNorm: true},
	"Gemma2ForCausalLM":  {gguf: "gemma2", gemma: true},
	"Gemma3ForCausalLM":  {gguf: "gemma3", qkNorm: true, gemma: true, ropeScaling: []string{"linear"}},
	"Phi3ForCausalLM":    {gguf: "phi3", ropeScaling: []string{"longrope", "su"}},
	// SmolLM3Model and GraniteModel are LlamaModels: Q/K permuted, llama's
	// keys. llama.cpp's smollm3 loads no biases and passes no RoPE factors.
	"SmolLM3ForCausalLM": {gguf: "smollm3", permuteQK: true, vocabAndRopeDim: true, config: checkSmolLM3Config},
	"GraniteForCausalLM": {gguf: "granite", permuteQK: true, vocabAndRopeDim: true, attnBias: true, config: readGraniteConfig, kvs: graniteKVs},
}

// SupportedCheckpointArchs lists the config.json architectures
// ConvertCheckpoint converts, sorted.
func SupportedCheckpointArchs() []string {
	out := make([]string, 0, len(checkpointArchs))
	for k := range checkpointArchs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RopeScaling is config.json's rope_scaling object, the fields the
// converter reads.
type RopeScaling struct {
	// RopeType is "rope_type" (newer transformers) or "type" (older).
	RopeType string
	// Factor, LowFreqFactor, HighFreqFactor and OriginalMaxPositions are
	// factor, low_freq_factor, high_freq_factor and
	// original_max_position_embeddings; nil when absent.
	Factor, LowFreqFactor, HighFreqFactor, OriginalMaxPositions *float64
	// LongFactor and ShortFactor are LongRoPE's long_factor and
	// short_factor (Phi-3.5/4-mini), one per rotated dimension pair.
	LongFactor, ShortFactor []float64
}

// CheckpointConfig is the part of a Hugging Face config.json that the GGUF
// conversion of a llama-family decoder needs.
type CheckpointConfig struct {
	// Path is the config.json file read.
	Path string
	// Architecture is the single entry of "architectures".
	Architecture string
	// HiddenSize, IntermediateSize, NumLayers, NumHeads, NumKVHeads and
	// VocabSize are hidden_size, intermediate_size, num_hidden_layers,
	// num_attention_heads, num_key_value_heads (NumHeads when absent) and
	// vocab_size.
	HiddenSize, IntermediateSize, NumLayers, NumHeads, NumKVHeads, VocabSize int
	// HeadDim is head_dim, or hidden_size/num_attention_heads when absent;
	// HeadDimSet says whether config.json has it (the converter then writes
	// attention.key_length and value_length).
	HeadDim    int
	HeadDimSet bool
	// MaxPositions is max_position_embeddings.
	MaxPositions int
	// RMSNormEps is rms_norm_eps; RopeTheta is rope_theta (0 when absent:
	// llama.cpp then uses 10000).
	RMSNormEps, RopeTheta float64
	// TieWordEmbeddings is tie_word_embeddings.
	TieWordEmbeddings bool
	// RopeScaling is nil when config.json has none.
	RopeScaling *RopeScaling
	// Gemma holds the Gemma-2/3 fields; nil for other architectures.
	Gemma *GemmaConfig
	// PartialRotary is partial_rotary_factor (0 when absent: all of each
	// head rotates), OriginalMaxPositions the top-level
	// original_max_position_embeddings (0 when absent) and SlidingWindow
	// sliding_window (0 when absent or null), which Phi3ForCausalLM has.
	PartialRotary        float64
	OriginalMaxPositions int
	SlidingWindow        int
	// Granite are GraniteForCausalLM's multipliers (nil for the others).
	Granite *GraniteMultipliers
}

// rawCheckpointConfig is config.json as decoded; pointers tell absent from zero.
type rawCheckpointConfig struct {
	Architectures     []string         `json:"architectures"`
	HiddenSize        *int             `json:"hidden_size"`
	IntermediateSize  *int             `json:"intermediate_size"`
	NumHiddenLayers   *int             `json:"num_hidden_layers"`
	NumAttentionHeads *int             `json:"num_attention_heads"`
	NumKeyValueHeads  *int             `json:"num_key_value_heads"`
	HeadDim           *int             `json:"head_dim"`
	VocabSize         *int             `json:"vocab_size"`
	MaxPositions      *int             `json:"max_position_embeddings"`
	RMSNormEps        *float64         `json:"rms_norm_eps"`
	RopeTheta         *float64         `json:"rope_theta"`
	TieWordEmbeddings *bool            `json:"tie_word_embeddings"`
	RopeScaling       *json.RawMessage `json:"rope_scaling"`
	PartialRotary     *float64         `json:"partial_rotary_factor"`
	OriginalMaxPos    *int             `json:"original_max_position_embeddings"`
	SlidingWindow     *int             `json:"sliding_window"`
}

// ReadCheckpointConfig reads and checks dir/config.json. Errors name the
// file and the field.
func ReadCheckpointConfig(dir string) (*CheckpointConfig, error) {
	path := filepath.Join(dir, CheckpointConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hf: checkpoint: %w", err)
	}
	return parseCheckpointConfig(path, b)
}

func parseCheckpointConfig(path string, b []byte) (*CheckpointConfig, error) {
	var raw rawCheckpointConfig
	if err := json.Unmarshal(b, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("hf: %s: field %q: %s is not a valid %s", path, te.Field, te.Value, te.Type)
		}
		return nil, fmt.Errorf("hf: %s: %w", path, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("hf: %s: "+format, append([]any{path}, args...)...)
	}
	c := &CheckpointConfig{Path: path}
	if len(raw.Architectures) != 1 {
		return nil, fail("architectures is %q, want exactly one of %s", raw.Architectures, strings.Join(SupportedCheckpointArchs(), ", "))
	}
	c.Architecture = raw.Architectures[0]
	if why, ok := refusedCheckpointArchs[c.Architecture]; ok {
		return nil, fail("architecture %q is not supported: %s", c.Architecture, why)
	}
	if _, ok := checkpointArchs[c.Architecture]; !ok {
		return nil, fail("architecture %q is not supported (supported: %s)", c.Architecture, strings.Join(SupportedCheckpointArchs(), ", "))
	}
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
	}{
		{"hidden_size", raw.HiddenSize, &c.HiddenSize},
		{"intermediate_size", raw.IntermediateSize, &c.IntermediateSize},
		{"num_hidden_layers", raw.NumHiddenLayers, &c.NumLayers},
		{"num_attention_heads", raw.NumAttentionHeads, &c.NumHeads},
		{"vocab_size", raw.VocabSize, &c.VocabSize},
	} {
		if f.v == nil {
			return nil, fail("%s is missing", f.name)
		}
		if *f.v <= 0 {
			return nil, fail("%s is %d, want > 0", f.name, *f.v)
		}
		*f.dst = *f.v
	}
	c.NumKVHeads = c.NumHeads
	if raw.NumKeyValueHeads != nil {
		c.NumKVHeads = *raw.NumKeyValueHeads
		if c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 {
			return nil, fail("num_key_value_heads is %d, want a positive divisor of num_attention_heads %d", c.NumKVHeads, c.NumHeads)
		}
	}
	if raw.HeadDim != nil {
		c.HeadDim, c.HeadDimSet = *raw.HeadDim, true
		if c.HeadDim <= 0 {
			return nil, fail("head_dim is %d, want > 0", c.HeadDim)
		}
	} else {
		if c.HiddenSize%c.NumHeads != 0 {
			return nil, fail("hidden_size %d is not a multiple of num_attention_heads %d (and head_dim is not set)", c.HiddenSize, c.NumHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if c.HeadDim%2 != 0 {
		return nil, fail("head size %d is odd; RoPE needs pairs", c.HeadDim)
	}
	// llama.cpp requires <arch>.context_length, which comes from here.
	if raw.MaxPositions == nil {
		return nil, fail("max_position_embeddings is missing")
	}
	if c.MaxPositions = *raw.MaxPositions; c.MaxPositions <= 0 {
		return nil, fail("max_position_embeddings is %d, want > 0", c.MaxPositions)
	}
	if raw.RMSNormEps == nil {
		return nil, fail("rms_norm_eps is missing")
	}
	if c.RMSNormEps = *raw.RMSNormEps; !(c.RMSNormEps > 0) {
		return nil, fail("rms_norm_eps is %g, want > 0", c.RMSNormEps)
	}
	if raw.RopeTheta != nil {
		if c.RopeTheta = *raw.RopeTheta; !(c.RopeTheta > 0) {
			return nil, fail("rope_theta is %g, want > 0", c.RopeTheta)
		}
	}
	if raw.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *raw.TieWordEmbeddings
	}
	if raw.RopeScaling != nil && !isNull(*raw.RopeScaling) {
		rs, err := parseRopeScaling(*raw.RopeScaling)
		if err != nil {
			return nil, fail("rope_scaling: %v", err)
		}
		if rs != nil {
			arch := checkpointArchs[c.Architecture]
			ok := false
			for _, t := range arch.ropeScaling {
				ok = ok || t == rs.RopeType
			}
			if !ok {
				return nil, fail("rope_scaling type %q is not supported for %s (supported: %q)", rs.RopeType, c.Architecture, arch.ropeScaling)
			}
			if rs.RopeType == "linear" && rs.Factor == nil {
				return nil, fail("rope_scaling: linear scaling without a factor")
			}
		}
		c.RopeScaling = rs
	}
	if checkpointArchs[c.Architecture].gemma {
		if err := parseGemmaConfig(c, raw, b); err != nil {
			return nil, err
		}
	}
	if raw.PartialRotary != nil {
		c.PartialRotary = *raw.PartialRotary
	}
	if raw.OriginalMaxPos != nil {
		c.OriginalMaxPositions = *raw.OriginalMaxPos
	}
	if raw.SlidingWindow != nil {
		c.SlidingWindow = *raw.SlidingWindow
	}
	if c.Architecture == "Phi3ForCausalLM" {
		if err := checkPhi3Config(c); err != nil {
			return nil, fail("%v", err)
		}
	}
	if f := checkpointArchs[c.Architecture].config; f != nil {
		if err := f(c, b); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// parseRopeScaling decodes rope_scaling. A type of "default" (no scaling, as
// some configs write) gives nil.
func parseRopeScaling(v json.RawMessage) (*RopeScaling, error) {
	var raw struct {
		RopeType       *string  `json:"rope_type"`
		Type           *string  `json:"type"`
		Factor         *float64 `json:"factor"`
		LowFreqFactor  *float64 `json:"low_freq_factor"`
		HighFreqFactor *float64 `json:"high_freq_factor"`
		Original       *float64 `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, err
	}
	var lists struct {
		LongFactor  []float64 `json:"long_factor"`
		ShortFactor []float64 `json:"short_factor"`
	}
	if err := json.Unmarshal(v, &lists); err != nil {
		return nil, err
	}
	rs := &RopeScaling{Factor: raw.Factor, LowFreqFactor: raw.LowFreqFactor, HighFreqFactor: raw.HighFreqFactor, OriginalMaxPositions: raw.Original,
		LongFactor: lists.LongFactor, ShortFactor: lists.ShortFactor}
	// convert_hf_to_gguf.py reads rope_type first and falls back to type.
	switch {
	case raw.RopeType != nil:
		rs.RopeType = *raw.RopeType
	case raw.Type != nil:
		rs.RopeType = *raw.Type
	default:
		return nil, errors.New("neither rope_type nor type is set")
	}
	rs.RopeType = strings.ToLower(rs.RopeType)
	if rs.RopeType == "default" {
		return nil, nil
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"factor", rs.Factor}, {"low_freq_factor", rs.LowFreqFactor}, {"high_freq_factor", rs.HighFreqFactor}, {"original_max_position_embeddings", rs.OriginalMaxPositions}} {
		if f.v != nil && !(*f.v > 0) {
			return nil, fmt.Errorf("%s is %g, want > 0", f.name, *f.v)
		}
	}
	return rs, nil
}

// checkpointShards are the safetensors files of a checkpoint and where each
// tensor is.
type checkpointShards struct {
	// files are the shards in name order.
	files []*Safetensors
	// where maps a tensor name to its shard.
	where map[string]*Safetensors
	// source names what lists the tensors, for errors about a missing one:
	// the index file or the single weights file.
	source string
}

// readShards finds and validates the weights of the checkpoint in dir:
// model.safetensors.index.json and the shards its weight_map names, or
// model.safetensors alone. Every shard header is validated (a truncated
// shard is an error naming it and its first tensor past the end), and the
// index must agree with the shards: each listed tensor in its shard, no
// tensor in a shard the index does not list, no tensor in two shards.
func readShards(dir string) (*checkpointShards, error) {
	indexPath := filepath.Join(dir, CheckpointIndexFile)
	b, err := os.ReadFile(indexPath)
	if errors.Is(err, os.ErrNotExist) {
		single := filepath.Join(dir, CheckpointWeightsFile)
		st, err := ReadSafetensors(single)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("hf: checkpoint %s: neither %s nor %s exists", dir, CheckpointIndexFile, CheckpointWeightsFile)
			}
			return nil, fmt.Errorf("hf: checkpoint: %w", err)
		}
		s := &checkpointShards{files: []*Safetensors{st}, where: map[string]*Safetensors{}, source: single}
		for _, t := range st.Tensors {
			s.where[t.Name] = st
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hf: checkpoint: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("hf: %s: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("hf: %s: weight_map is missing or empty", indexPath)
	}
	byFile := map[string][]string{}
	for name, file := range idx.WeightMap {
		// A shard name is a file beside the index: anything else (a path,
		// "..") would read outside the checkpoint.
		if file == "" || file != filepath.Base(file) || file == "." || file == ".." || strings.ContainsRune(file, '\\') {
			return nil, fmt.Errorf("hf: %s: weight_map[%q] is %q, not a file name in the checkpoint directory", indexPath, name, file)
		}
		byFile[file] = append(byFile[file], name)
	}
	names := make([]string, 0, len(byFile))
	for f := range byFile {
		names = append(names, f)
	}
	sort.Strings(names)
	s := &checkpointShards{where: map[string]*Safetensors{}, source: indexPath}
	for _, file := range names {
		st, err := ReadSafetensors(filepath.Join(dir, file))
		if err != nil {
			return nil, fmt.Errorf("hf: checkpoint (shard listed in %s): %w", CheckpointIndexFile, err)
		}
		listed := byFile[file]
		sort.Strings(listed)
		for _, name := range listed {
			if _, ok := st.Tensor(name); !ok {
				return nil, fmt.Errorf("hf: %s: weight_map puts tensor %q in %s, which has no such tensor", indexPath, name, st.Path)
			}
		}
		for _, t := range st.Tensors {
			if idx.WeightMap[t.Name] != file {
				return nil, fmt.Errorf("hf: %s: tensor %q is not listed for this shard in %s (weight_map says %q)", st.Path, t.Name, CheckpointIndexFile, idx.WeightMap[t.Name])
			}
			s.where[t.Name] = st
		}
		s.files = append(s.files, st)
	}
	return s, nil
}
