package hf

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/fireact/fireact/llama/gguf"
)

// GraniteMultipliers are the four scalars of a GraniteForCausalLM
// config.json: embedding_multiplier, attention_multiplier,
// residual_multiplier and logits_scaling (transformers' default 1 for an
// absent one).
type GraniteMultipliers struct {
	Embedding, Attention, Residual, Logits float64
}

// readGraniteConfig reads GraniteForCausalLM's multipliers into c.Granite.
// convert_hf_to_gguf.py (GraniteModel) writes a multiplier only when it is
// nonzero, yet llama.cpp requires all four keys; here an absent one takes
// transformers' default and every key is written, and a zero one is
// refused. GraniteModel also ignores head_dim (Granite's attention always
// uses hidden_size / num_attention_heads), so one that says otherwise is
// refused, and one that agrees writes no key_length.
func readGraniteConfig(c *CheckpointConfig, b []byte) error {
	var raw struct {
		Embedding *float64 `json:"embedding_multiplier"`
		Attention *float64 `json:"attention_multiplier"`
		Residual  *float64 `json:"residual_multiplier"`
		Logits    *float64 `json:"logits_scaling"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("hf: %s: %w", c.Path, err)
	}
	g := &GraniteMultipliers{}
	for _, f := range []struct {
		name string
		v    *float64
		dst  *float64
	}{
		{"embedding_multiplier", raw.Embedding, &g.Embedding},
		{"attention_multiplier", raw.Attention, &g.Attention},
		{"residual_multiplier", raw.Residual, &g.Residual},
		{"logits_scaling", raw.Logits, &g.Logits},
	} {
		*f.dst = 1
		if f.v == nil {
			continue
		}
		if *f.v == 0 || math.IsInf(*f.v, 0) || math.IsNaN(*f.v) {
			return fmt.Errorf("hf: %s: %s is %g; llama.cpp's granite needs a finite nonzero value", c.Path, f.name, *f.v)
		}
		*f.dst = *f.v
	}
	if c.HeadDimSet {
		if c.HeadDim*c.NumHeads != c.HiddenSize {
			return fmt.Errorf("hf: %s: head_dim %d is not hidden_size / num_attention_heads (%d / %d); Granite's attention has no head_dim of its own",
				c.Path, c.HeadDim, c.HiddenSize, c.NumHeads)
		}
		c.HeadDimSet = false
	}
	c.Granite = g
	return nil
}

// graniteKVs are the multipliers under the names llama.cpp reads.
func graniteKVs(c *CheckpointConfig, a string) []gguf.KV {
	g := c.Granite
	return []gguf.KV{
		{Key: a + ".attention.scale", Value: float32(g.Attention)},
		{Key: a + ".embedding_scale", Value: float32(g.Embedding)},
		{Key: a + ".residual_scale", Value: float32(g.Residual)},
		{Key: a + ".logit_scale", Value: float32(g.Logits)},
	}
}
