package hf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// Conversion summarizes a converted adapter.
type Conversion struct {
	// Arch is the base model's architecture.
	Arch string
	// Rank is the LoRA rank (of the first target when ranks differ).
	Rank int
	// Alpha is the alpha written (adapter.lora.alpha or lora_alpha).
	Alpha float64
	// Targets are the GGUF base tensors adapted, sorted.
	Targets []string
	// Permuted are the targets whose lora_b rows were reordered for RoPE.
	Permuted []string
}

// loraPair is one adapted base tensor.
type loraPair struct {
	base string // GGUF base tensor name
	a, b string // source tensor names
}

// checkPairShape checks lora_a (ggml [in, r]) and lora_b (ggml [r, out])
// against the base tensor (ggml [in, out]).
func checkPairShape(base *gguf.File, name string, a, b []uint64) error {
	bt, ok := base.Tensor(name)
	if !ok {
		return fmt.Errorf("the base %s has no tensor %q", base.Path, name)
	}
	if len(bt.Shape) != 2 || len(a) != 2 || len(b) != 2 {
		return fmt.Errorf("base %v, lora_a %v and lora_b %v must all be 2-D", bt.Shape, a, b)
	}
	if a[0] != bt.Shape[0] || b[1] != bt.Shape[1] || a[1] != b[0] || a[1] == 0 {
		return fmt.Errorf("lora_a [in=%d, r=%d] and lora_b [r=%d, out=%d] (ggml order) do not fit the base [in=%d, out=%d]",
			a[0], a[1], b[0], b[1], bt.Shape[0], bt.Shape[1])
	}
	return nil
}

// PEFTToGGUF converts the PEFT LoRA adapter in dir (adapter_config.json and
// adapter_model.safetensors) for the GGUF model base into a llama.cpp LoRA
// GGUF at out.
//
// Tensors keep their element type (F32, F16 or BF16) and bytes; lora_b of the
// Q and K projections of llama-architecture models is permuted like
// convert_hf_to_gguf.py permutes the base weights. The scale PEFT applies
// (lora_alpha/r, or lora_alpha/√r with use_rslora) is written as
// adapter.lora.alpha so that llama.cpp's alpha/r equals it; where ranks differ
// (rank_pattern) and one alpha cannot express every scale, the remainder is
// multiplied into lora_b, which is then written as F32.
//
// fan_in_fan_out does not change the orientation of the saved tensors: PEFT
// always stores lora_A as [r, in] and lora_B as [out, r] (nn.Linear) and uses
// the flag only to transpose the delta for Conv1D base weights; it also
// resets the flag to false for nn.Linear targets, which all llama/qwen
// projections are. The shapes are checked against the base, so a file in
// another orientation is an error, not a silent mis-conversion.
func PEFTToGGUF(ctx context.Context, dir string, base *gguf.File, out string) (*Conversion, error) {
	cfg, err := ReadPEFTConfig(dir)
	if err != nil {
		return nil, err
	}
	arch, ok := archs[base.Architecture()]
	if !ok {
		return nil, fmt.Errorf("peft: base %s: architecture %q is not supported (have llama, qwen2, qwen3)", base.Path, base.Architecture())
	}
	nHead, nHeadKV, err := headCounts(base)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	stPath := filepath.Join(dir, PEFTWeightsFile)
	st, err := ReadSafetensors(stPath)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	f, err := os.Open(stPath)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	defer f.Close()

	pairs := map[string]*loraPair{}
	var order []string
	for _, t := range st.Tensors {
		module, isA, err := splitPEFTName(t.Name)
		if err != nil {
			return nil, fmt.Errorf("peft: %s: tensor %q: %w", stPath, t.Name, err)
		}
		name, err := ggufName(module)
		if err != nil {
			return nil, fmt.Errorf("peft: %s: tensor %q: module %q: %w", stPath, t.Name, module, err)
		}
		if len(t.Shape) != 2 {
			return nil, fmt.Errorf("peft: %s: tensor %q: shape %v is not 2-D", stPath, t.Name, t.Shape)
		}
		p := pairs[name]
		if p == nil {
			p = &loraPair{base: name}
			pairs[name] = p
			order = append(order, name)
		}
		if isA {
			p.a = t.Name
		} else {
			p.b = t.Name
		}
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("peft: %s: no lora_A/lora_B tensors", stPath)
	}
	sort.Strings(order)

	conv := &Conversion{Arch: base.Architecture()}
	scaleOf := func(r int) float64 {
		if cfg.UseRSLoRA {
			return cfg.LoRAAlpha / math.Sqrt(float64(r))
		}
		return cfg.LoRAAlpha / float64(r)
	}
	w := gguf.NewWriter()
	for _, name := range order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := pairs[name]
		if p.a == "" || p.b == "" {
			return nil, fmt.Errorf("peft: %s: module of %q has only one of lora_A/lora_B", stPath, name)
		}
		ta, _ := st.Tensor(p.a)
		tb, _ := st.Tensor(p.b)
		// torch [r, in] and [out, r] are ggml [in, r] and [r, out].
		aShape := []uint64{uint64(ta.Shape[1]), uint64(ta.Shape[0])}
		bShape := []uint64{uint64(tb.Shape[1]), uint64(tb.Shape[0])}
		if err := checkPairShape(base, name, aShape, bShape); err != nil {
			return nil, fmt.Errorf("peft: %s: tensors %q/%q: %w", stPath, p.a, p.b, err)
		}
		r := int(ta.Shape[0])
		if conv.Rank == 0 {
			conv.Rank = r
			// llama.cpp scales by alpha/r: pick alpha so that this equals
			// PEFT's scale for the first rank (exactly lora_alpha without rsLoRA).
			conv.Alpha = cfg.LoRAAlpha
			if cfg.UseRSLoRA {
				conv.Alpha = cfg.LoRAAlpha * math.Sqrt(float64(r))
			}
		}
		aData, err := st.ReadData(f, p.a)
		if err != nil {
			return nil, fmt.Errorf("peft: %w", err)
		}
		bData, err := st.ReadData(f, p.b)
		if err != nil {
			return nil, fmt.Errorf("peft: %w", err)
		}
		aType, _ := ta.DType.GGUFType()
		bType, _ := tb.DType.GGUFType()
		if h := qkHeads(arch, name, nHead, nHeadKV); h > 0 {
			perm, err := qkPermutation(int(tb.Shape[0]), h)
			if err != nil {
				return nil, fmt.Errorf("peft: %s: tensor %q: %w", stPath, p.b, err)
			}
			bData = permuteRows(bData, perm, false)
			conv.Permuted = append(conv.Permuted, name)
		}
		if factor := scaleOf(r) / (conv.Alpha / float64(r)); math.Abs(factor-1) > 1e-6 {
			x, err := gguf.Dequantize(bType, bData, int(tb.Elements()))
			if err != nil {
				return nil, fmt.Errorf("peft: %s: tensor %q: %w", stPath, p.b, err)
			}
			for i := range x {
				x[i] = float32(float64(x[i]) * factor)
			}
			bType, bData = gguf.TypeF32, gguf.EncodeF32(x)
		}
		if err := w.AddTensor(name+".lora_a", aType, aShape, aData); err != nil {
			return nil, fmt.Errorf("peft: %w", err)
		}
		if err := w.AddTensor(name+".lora_b", bType, bShape, bData); err != nil {
			return nil, fmt.Errorf("peft: %w", err)
		}
		conv.Targets = append(conv.Targets, name)
	}
	for _, kv := range []gguf.KV{
		{Key: "general.type", Value: "adapter"},
		{Key: "general.architecture", Value: conv.Arch},
		{Key: "general.name", Value: filepath.Base(filepath.Clean(dir))},
		{Key: "adapter.type", Value: "lora"},
		{Key: "adapter.lora.alpha", Value: float32(conv.Alpha)},
	} {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			return nil, fmt.Errorf("peft: %w", err)
		}
	}
	if err := w.WriteFile(out); err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	return conv, nil
}

// PEFTOptions are the choices GGUFToPEFT cannot read from the files.
type PEFTOptions struct {
	// BaseModel is written as base_model_name_or_path (the Hugging Face id
	// of the base, e.g. "meta-llama/Llama-2-7b-hf"); default: the base
	// GGUF's general.name.
	BaseModel string
}

// GGUFToPEFT converts the llama.cpp LoRA GGUF at adapterPath, made for the
// GGUF model base, into a PEFT adapter directory outDir (created if needed):
// adapter_model.safetensors with HF tensor names, Q/K lora_b rows put back in
// HF order (the inverse of PEFTToGGUF's permutation) and element types kept,
// and an adapter_config.json with r, lora_alpha and target_modules. Every
// target must have the same rank.
func GGUFToPEFT(ctx context.Context, adapterPath string, base *gguf.File, outDir string, opts PEFTOptions) (*Conversion, error) {
	ad, err := gguf.Read(adapterPath)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	if t, _ := ad.String("general.type"); t != "adapter" {
		return nil, fmt.Errorf("peft: %s: general.type is %q, want \"adapter\"", adapterPath, t)
	}
	if t, _ := ad.String("adapter.type"); t != "lora" {
		return nil, fmt.Errorf("peft: %s: adapter.type is %q, want \"lora\"", adapterPath, t)
	}
	if ad.Architecture() != base.Architecture() {
		return nil, fmt.Errorf("peft: %s: architecture %q does not match the base's %q", adapterPath, ad.Architecture(), base.Architecture())
	}
	arch, ok := archs[base.Architecture()]
	if !ok {
		return nil, fmt.Errorf("peft: base %s: architecture %q is not supported (have llama, qwen2, qwen3)", base.Path, base.Architecture())
	}
	nHead, nHeadKV, err := headCounts(base)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	f, err := os.Open(adapterPath)
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	defer f.Close()
	read := func(t gguf.TensorInfo) ([]byte, error) {
		buf := make([]byte, t.Size())
		if _, err := f.ReadAt(buf, ad.DataOffset+int64(t.Offset)); err != nil && err != io.EOF {
			return nil, fmt.Errorf("peft: %s: tensor %q: read: %w", adapterPath, t.Name, err)
		}
		return buf, nil
	}

	conv := &Conversion{Arch: base.Architecture()}
	var tensors []TensorData
	var modules []string
	for _, ta := range ad.Tensors {
		name, ok := strings.CutSuffix(ta.Name, ".lora_a")
		if !ok {
			if _, isB := strings.CutSuffix(ta.Name, ".lora_b"); isB {
				continue // handled with its lora_a
			}
			return nil, fmt.Errorf("peft: %s: tensor %q is not a lora_a/lora_b tensor", adapterPath, ta.Name)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tb, ok := ad.Tensor(name + ".lora_b")
		if !ok {
			return nil, fmt.Errorf("peft: %s: tensor %q has no lora_b", adapterPath, ta.Name)
		}
		if err := checkPairShape(base, name, ta.Shape, tb.Shape); err != nil {
			return nil, fmt.Errorf("peft: %s: tensor %q: %w", adapterPath, name, err)
		}
		module, err := hfModule(name)
		if err != nil {
			return nil, fmt.Errorf("peft: %s: tensor %q: %w", adapterPath, name, err)
		}
		r := int(ta.Shape[1])
		if conv.Rank == 0 {
			conv.Rank = r
		} else if r != conv.Rank {
			return nil, fmt.Errorf("peft: %s: tensor %q has rank %d, the others %d (mixed ranks are not supported)", adapterPath, name, r, conv.Rank)
		}
		aType, okA := dtypeOf(ta.Type)
		bType, okB := dtypeOf(tb.Type)
		if !okA || !okB {
			return nil, fmt.Errorf("peft: %s: tensor %q: types %s/%s, want F32, F16 or BF16", adapterPath, name, ta.Type, tb.Type)
		}
		aData, err := read(ta)
		if err != nil {
			return nil, err
		}
		bData, err := read(tb)
		if err != nil {
			return nil, err
		}
		if h := qkHeads(arch, name, nHead, nHeadKV); h > 0 {
			perm, err := qkPermutation(int(tb.Shape[1]), h)
			if err != nil {
				return nil, fmt.Errorf("peft: %s: tensor %q: %w", adapterPath, tb.Name, err)
			}
			bData = permuteRows(bData, perm, true)
			conv.Permuted = append(conv.Permuted, name)
		}
		prefix := "base_model.model." + module
		tensors = append(tensors,
			TensorData{Name: prefix + ".lora_A.weight", DType: aType, Shape: []int64{int64(ta.Shape[1]), int64(ta.Shape[0])}, Data: aData},
			TensorData{Name: prefix + ".lora_B.weight", DType: bType, Shape: []int64{int64(tb.Shape[1]), int64(tb.Shape[0])}, Data: bData},
		)
		modules = append(modules, module)
		conv.Targets = append(conv.Targets, name)
	}
	if len(tensors) == 0 {
		return nil, fmt.Errorf("peft: %s: no LoRA tensors", adapterPath)
	}
	sort.Strings(conv.Targets)
	// llama.cpp scales by alpha/r, and by 1 when alpha is 0; PEFT always by
	// lora_alpha/r.
	conv.Alpha = float64(conv.Rank)
	if a, ok := ad.Float("adapter.lora.alpha"); ok && a != 0 {
		conv.Alpha = a
	}
	baseModel := opts.BaseModel
	if baseModel == "" {
		baseModel, _ = base.String("general.name")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	if err := WriteSafetensors(filepath.Join(outDir, PEFTWeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	// The keys PEFT's LoraConfig writes, sorted and indented as its
	// save_pretrained does (json.dumps(indent=2, sort_keys=True)).
	cfg := map[string]any{
		"alpha_pattern":           map[string]any{},
		"auto_mapping":            nil,
		"base_model_name_or_path": baseModel,
		"bias":                    "none",
		"fan_in_fan_out":          false,
		"inference_mode":          true,
		"init_lora_weights":       true,
		"layers_pattern":          nil,
		"layers_to_transform":     nil,
		"lora_alpha":              formatFloat(conv.Alpha),
		"lora_dropout":            0.0,
		"modules_to_save":         nil,
		"peft_type":               "LORA",
		"r":                       conv.Rank,
		"rank_pattern":            map[string]any{},
		"revision":                nil,
		"target_modules":          targetShortNames(modules),
		"task_type":               "CAUSAL_LM",
		"use_dora":                false,
		"use_rslora":              false,
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	if err := os.WriteFile(filepath.Join(outDir, PEFTConfigFile), append(js, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	return conv, nil
}
