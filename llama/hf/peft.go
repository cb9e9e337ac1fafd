package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// File names of a PEFT adapter directory (PEFT's CONFIG_NAME and
// SAFETENSORS_WEIGHTS_NAME).
const (
	PEFTConfigFile  = "adapter_config.json"
	PEFTWeightsFile = "adapter_model.safetensors"
)

// PEFTConfig is the part of a PEFT LoraConfig (adapter_config.json) that a
// conversion reads or writes. Reading ignores the other keys.
type PEFTConfig struct {
	PEFTType      string  `json:"peft_type"`
	TaskType      string  `json:"task_type,omitempty"`
	BaseModel     string  `json:"base_model_name_or_path"`
	R             int     `json:"r"`
	LoRAAlpha     float64 `json:"lora_alpha"`
	LoRADropout   float64 `json:"lora_dropout"`
	UseRSLoRA     bool    `json:"use_rslora"`
	FanInFanOut   bool    `json:"fan_in_fan_out"`
	Bias          string  `json:"bias"`
	UseDoRA       bool    `json:"use_dora"`
	InferenceMode bool    `json:"inference_mode"`
	// TargetModules is a list of module name suffixes or one regular
	// expression, as in PEFT.
	TargetModules json.RawMessage    `json:"target_modules"`
	ModulesToSave []string           `json:"modules_to_save"`
	RankPattern   map[string]int     `json:"rank_pattern"`
	AlphaPattern  map[string]float64 `json:"alpha_pattern"`
}

// ReadPEFTConfig reads and checks dir/adapter_config.json: a LORA adapter
// with r > 0, no bias terms, no DoRA, no fully saved modules and no per-module
// alphas (llama.cpp has one alpha per adapter and no place for the rest).
func ReadPEFTConfig(dir string) (*PEFTConfig, error) {
	path := filepath.Join(dir, PEFTConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	var c PEFTConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("peft: %s: %w", path, err)
	}
	switch {
	case c.PEFTType != "LORA":
		return nil, fmt.Errorf("peft: %s: peft_type is %q, want \"LORA\"", path, c.PEFTType)
	case c.R <= 0:
		return nil, fmt.Errorf("peft: %s: r is %d, want > 0", path, c.R)
	case c.LoRAAlpha <= 0 || math.IsInf(c.LoRAAlpha, 0):
		return nil, fmt.Errorf("peft: %s: lora_alpha is %g, want > 0", path, c.LoRAAlpha)
	case c.Bias != "" && c.Bias != "none":
		return nil, fmt.Errorf("peft: %s: bias is %q: trained bias terms have no place in a llama.cpp LoRA (want \"none\")", path, c.Bias)
	case c.UseDoRA:
		return nil, fmt.Errorf("peft: %s: use_dora is true: DoRA adapters are not LoRA deltas llama.cpp can apply", path)
	case len(c.ModulesToSave) > 0:
		return nil, fmt.Errorf("peft: %s: modules_to_save %v: fully trained modules have no place in a llama.cpp LoRA", path, c.ModulesToSave)
	case len(c.AlphaPattern) > 0:
		return nil, fmt.Errorf("peft: %s: alpha_pattern is not supported (llama.cpp has one alpha per adapter)", path)
	}
	return &c, nil
}

// archInfo says how convert_hf_to_gguf.py treats an architecture's Q and K
// projections. Only architectures checked against llama.cpp are listed:
// converting for another one fails instead of guessing. The permutation goes
// with the RoPE variant (llama_model_rope_type in llama-model.cpp): llama
// uses LLAMA_ROPE_TYPE_NORM, which rotates adjacent pairs, so the converter
// reorders HF's rotate_half layout for it; qwen2 and qwen3 use
// LLAMA_ROPE_TYPE_NEOX, HF's own layout, and are converted unchanged.
type archInfo struct {
	// permuteQK: LlamaModel.modify_tensors reorders the rows of q_proj (with
	// n_head) and k_proj (with n_head_kv).
	permuteQK bool
}

var archs = map[string]archInfo{
	"llama": {permuteQK: true},  // LlamaModel (also Mistral dense models)
	"qwen2": {permuteQK: false}, // Qwen2Model: weights as in HF
	"qwen3": {permuteQK: false}, // Qwen3Model extends Qwen2Model
}

// headCounts returns n_head and n_head_kv of a base model.
func headCounts(base *gguf.File) (int, int, error) {
	a := base.Architecture()
	nh, ok := base.Uint(a + ".attention.head_count")
	if !ok || nh == 0 {
		return 0, 0, fmt.Errorf("base %s: %s.attention.head_count is missing or not a positive integer", base.Path, a)
	}
	nkv, ok := base.Uint(a + ".attention.head_count_kv")
	if _, present := base.Get(a + ".attention.head_count_kv"); present && (!ok || nkv == 0) {
		return 0, 0, fmt.Errorf("base %s: %s.attention.head_count_kv is not a positive integer (per-layer head counts are not supported)", base.Path, a)
	}
	if !ok {
		nkv = nh
	}
	return int(nh), int(nkv), nil
}

// qkPermutation returns, for a Q/K lora_b with rows output rows, the row
// order of convert_hf_to_gguf.py's LlamaModel.permute: the HF rows of each
// head, viewed as (2, head_dim/2), are transposed to (head_dim/2, 2). GGUF row
// i is HF row perm[i].
func qkPermutation(rows, heads int) ([]int, error) {
	if heads <= 0 || rows%(2*heads) != 0 {
		return nil, fmt.Errorf("%d rows are not %d heads of an even size", rows, heads)
	}
	half := rows / heads / 2
	perm := make([]int, rows)
	for h := 0; h < heads; h++ {
		for t := 0; t < half; t++ {
			for j := 0; j < 2; j++ {
				perm[h*2*half+t*2+j] = h*2*half + j*half + t
			}
		}
	}
	return perm, nil
}

// permuteRows reorders the rows of a row-major matrix: row i of the result
// is row perm[i] of data (inverse=false), or row perm[i] of the result is row
// i of data (inverse=true). Bytes are moved, never converted, so the result
// is bit-identical whatever the element type.
func permuteRows(data []byte, perm []int, inverse bool) []byte {
	rowBytes := len(data) / len(perm)
	out := make([]byte, len(data))
	for i, p := range perm {
		if inverse {
			copy(out[p*rowBytes:(p+1)*rowBytes], data[i*rowBytes:(i+1)*rowBytes])
		} else {
			copy(out[i*rowBytes:(i+1)*rowBytes], data[p*rowBytes:(p+1)*rowBytes])
		}
	}
	return out
}

// hfToGGUF maps HF module names (after "base_model.model.") to llama.cpp
// tensor names (without ".weight"), as convert_hf_to_gguf.py's tensor map
// does for the llama/qwen family.
var (
	hfLayerRe = regexp.MustCompile(`^model\.layers\.(\d+)\.(self_attn\.(?:q|k|v|o)_proj|mlp\.(?:gate|up|down)_proj)$`)
	hfKinds   = map[string]string{
		"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
		"self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
		"mlp.down_proj": "ffn_down",
	}
	ggufLayerRe = regexp.MustCompile(`^blk\.(\d+)\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$`)
)

// ggufName returns the GGUF base tensor name for an HF module name.
func ggufName(module string) (string, error) {
	if module == "lm_head" {
		return "output.weight", nil
	}
	if module == "model.embed_tokens" {
		return "", errors.New("embedding adapters are not supported")
	}
	m := hfLayerRe.FindStringSubmatch(module)
	if m == nil {
		return "", errors.New("not a projection of a llama/qwen block or lm_head")
	}
	return "blk." + m[1] + "." + hfKinds[m[2]] + ".weight", nil
}

// hfModule is the inverse of ggufName.
func hfModule(name string) (string, error) {
	if name == "output.weight" {
		return "lm_head", nil
	}
	m := ggufLayerRe.FindStringSubmatch(name)
	if m == nil {
		return "", errors.New("not a projection of a llama/qwen block or output.weight")
	}
	for hf, g := range hfKinds {
		if g == m[2] {
			return "model.layers." + m[1] + "." + hf, nil
		}
	}
	panic("unreachable: ggufLayerRe and hfKinds disagree")
}

// qkHeads returns the head count that permutes a GGUF tensor's lora_b, or 0
// when the tensor is not permuted.
func qkHeads(arch archInfo, name string, nHead, nHeadKV int) int {
	if !arch.permuteQK {
		return 0
	}
	switch {
	case strings.HasSuffix(name, ".attn_q.weight"):
		return nHead
	case strings.HasSuffix(name, ".attn_k.weight"):
		return nHeadKV
	}
	return 0
}

// splitPEFTName splits "base_model.model.<module>.lora_A.weight" into the
// module and whether it is lora_A.
func splitPEFTName(name string) (module string, isA bool, err error) {
	rest, ok := strings.CutPrefix(name, "base_model.model.")
	if !ok {
		return "", false, errors.New(`name does not start with "base_model.model."`)
	}
	if m, ok := strings.CutSuffix(rest, ".lora_A.weight"); ok {
		return m, true, nil
	}
	if m, ok := strings.CutSuffix(rest, ".lora_B.weight"); ok {
		return m, false, nil
	}
	return "", false, errors.New("not a lora_A/lora_B weight (full weights, biases and embedding adapters are not supported)")
}

// targetShortNames lists the distinct last components of modules
// ("q_proj", ...) in first-seen order, the form PEFT writes target_modules in.
func targetShortNames(modules []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range modules {
		s := m[strings.LastIndexByte(m, '.')+1:]
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// formatFloat writes alpha as PEFT does: an integer when it is one.
func formatFloat(f float64) json.Number {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return json.Number(strconv.FormatInt(int64(f), 10))
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
}
