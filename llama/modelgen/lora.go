package modelgen

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// LoRAConfig describes a LoRA adapter in llama.cpp's GGUF format.
type LoRAConfig struct {
	// Targets are base-model tensor names to adapt, e.g.
	// "blk.0.attn_q.weight" (see AllTargets). Each must be a 2-D tensor of
	// the base model; token_embd.weight is not supported (llama.cpp lays its
	// adapter out differently).
	Targets []string
	// Rank is the LoRA rank r (required, > 0).
	Rank int
	// Alpha is stored as adapter.lora.alpha; llama.cpp scales the update by
	// Alpha/Rank. Zero means Alpha = Rank (scale 1).
	Alpha float32
	// Seed selects the random values.
	Seed uint64
	// ZeroB makes every B matrix zero, so the adapter leaves the model's
	// output unchanged (the usual LoRA initialization).
	ZeroB bool
	// Std is the standard deviation of A and (unless ZeroB) B. Zero means
	// 1/sqrt(n_in) for A and 1/sqrt(Rank) for B, which gives an update of
	// the same order as the base weights, clearly visible in the output.
	Std float32
	// Name is general.name; default "modelgen-lora".
	Name string
}

// layerWeightKind returns kind for a per-layer weight "blk.<N>.<kind>.weight".
func layerWeightKind(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return "", false
	}
	rest, ok = strings.CutSuffix(rest, ".weight")
	if !ok {
		return "", false
	}
	layer, kind, ok := strings.Cut(rest, ".")
	if !ok || layer == "" || strings.Trim(layer, "0123456789") != "" {
		return "", false
	}
	return kind, true
}

// projectionKinds are the seven linear projections of a llama block.
func projectionKinds() []string {
	return []string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}
}

// AllTargets returns the names of the base model's 2-D per-layer weights of
// the given kinds ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate",
// "ffn_up", "ffn_down"), in file order. With no kinds it selects all seven
// projections.
func AllTargets(base *gguf.File, kinds ...string) []string {
	if base == nil {
		return nil
	}
	if len(kinds) == 0 {
		kinds = projectionKinds()
	}
	want := make(map[string]bool, len(kinds))
	for _, k := range kinds {
		want[k] = true
	}
	var out []string
	for _, t := range base.Tensors {
		kind, ok := layerWeightKind(t.Name)
		if ok && want[kind] && len(t.Shape) == 2 {
			out = append(out, t.Name)
		}
	}
	return out
}

// WriteLoRA writes a LoRA adapter for base to path. For every target with
// base shape [n_in, n_out] (ggml order) it writes "<target>.lora_a" with
// shape [n_in, r] and "<target>.lora_b" with shape [r, n_out], both F32, and
// the keys general.type="adapter", general.architecture (the base's),
// adapter.type="lora" and adapter.lora.alpha, as llama-adapter.cpp expects.
func WriteLoRA(path string, base *gguf.File, cfg LoRAConfig) error {
	if base == nil {
		return errors.New("modelgen: WriteLoRA: nil base model")
	}
	if cfg.Rank <= 0 {
		return fmt.Errorf("modelgen: WriteLoRA: rank %d must be positive", cfg.Rank)
	}
	if len(cfg.Targets) == 0 {
		return errors.New("modelgen: WriteLoRA: no targets")
	}
	if cfg.Std < 0 || math.IsNaN(float64(cfg.Std)) {
		return fmt.Errorf("modelgen: WriteLoRA: Std %g must be >= 0", cfg.Std)
	}
	arch := base.Architecture()
	if arch == "" {
		return fmt.Errorf("modelgen: WriteLoRA: base %s has no general.architecture", base.Path)
	}
	alpha := cfg.Alpha
	if alpha == 0 {
		alpha = float32(cfg.Rank)
	}
	name := cfg.Name
	if name == "" {
		name = "modelgen-lora"
	}
	w := gguf.NewWriter()
	for _, kv := range []gguf.KV{
		{Key: "general.type", Value: "adapter"},
		{Key: "general.architecture", Value: arch},
		{Key: "general.name", Value: name},
		{Key: "adapter.type", Value: "lora"},
		{Key: "adapter.lora.alpha", Value: alpha},
	} {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			return fmt.Errorf("modelgen: WriteLoRA: %w", err)
		}
	}
	r := uint64(cfg.Rank)
	seen := make(map[string]bool, len(cfg.Targets))
	for _, target := range cfg.Targets {
		if seen[target] {
			return fmt.Errorf("modelgen: WriteLoRA: target %q listed twice", target)
		}
		seen[target] = true
		ti, ok := base.Tensor(target)
		if !ok {
			return fmt.Errorf("modelgen: WriteLoRA: target %q not found in base %s", target, base.Path)
		}
		if len(ti.Shape) != 2 {
			return fmt.Errorf("modelgen: WriteLoRA: target %q has shape %v, want a 2-D matrix", target, ti.Shape)
		}
		if target == "token_embd.weight" {
			return fmt.Errorf("modelgen: WriteLoRA: target %q is not supported", target)
		}
		nIn, nOut := ti.Shape[0], ti.Shape[1]
		stdA, stdB := float64(cfg.Std), float64(cfg.Std)
		if cfg.Std == 0 {
			stdA, stdB = 1/math.Sqrt(float64(nIn)), 1/math.Sqrt(float64(r))
		}
		if cfg.ZeroB {
			stdB = -1 // zeros, see randomTensor
		}
		a := tensorSpec{name: target + ".lora_a", typ: gguf.TypeF32, shape: []uint64{nIn, r}}
		b := tensorSpec{name: target + ".lora_b", typ: gguf.TypeF32, shape: []uint64{r, nOut}}
		if err := w.AddTensorFunc(a.name, a.typ, a.shape, randomTensor(cfg.Seed, a, stdA)); err != nil {
			return fmt.Errorf("modelgen: WriteLoRA: %w", err)
		}
		if err := w.AddTensorFunc(b.name, b.typ, b.shape, randomTensor(cfg.Seed, b, stdB)); err != nil {
			return fmt.Errorf("modelgen: WriteLoRA: %w", err)
		}
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("modelgen: WriteLoRA: %w", err)
	}
	return nil
}
