package modelgen

import (
	"fmt"
	"math"

	"github.com/fireact/fireact/llama/gguf"
)

// GraniteScales are the four scalar multipliers of an IBM Granite-3 dense
// model (arch "granite"), named as in its config.json. convert_hf_to_gguf.py
// writes them as granite.embedding_scale, granite.attention.scale,
// granite.residual_scale and granite.logit_scale, and llama.cpp requires all
// four keys: it multiplies the token embeddings by EmbeddingMultiplier,
// scales Q·K by AttentionMultiplier (in place of 1/sqrt(head size)), scales
// the attention and FFN outputs by ResidualMultiplier before each residual
// add, and divides the logits by LogitsScaling.
type GraniteScales struct {
	EmbeddingMultiplier float32 // "embedding_multiplier"
	AttentionMultiplier float32 // "attention_multiplier"
	ResidualMultiplier  float32 // "residual_multiplier"
	LogitsScaling       float32 // "logits_scaling"
}

// validate checks that every multiplier is a finite nonzero number: the
// converter writes a key only for a nonzero value, and llama.cpp divides by
// the logit scale.
func (s GraniteScales) validate() error {
	for _, f := range []struct {
		name string
		v    float32
	}{{"EmbeddingMultiplier", s.EmbeddingMultiplier}, {"AttentionMultiplier", s.AttentionMultiplier},
		{"ResidualMultiplier", s.ResidualMultiplier}, {"LogitsScaling", s.LogitsScaling}} {
		if f.v == 0 || math.IsNaN(float64(f.v)) || math.IsInf(float64(f.v), 0) {
			return fmt.Errorf("modelgen: Granite.%s is %g, want a finite nonzero value", f.name, f.v)
		}
	}
	return nil
}

// kvs returns the metadata keys of arch a (granite) for the multipliers.
func (s GraniteScales) kvs(a string) []gguf.KV {
	return []gguf.KV{
		{Key: a + ".embedding_scale", Value: s.EmbeddingMultiplier},
		{Key: a + ".attention.scale", Value: s.AttentionMultiplier},
		{Key: a + ".residual_scale", Value: s.ResidualMultiplier},
		{Key: a + ".logit_scale", Value: s.LogitsScaling},
	}
}

// validateGranite checks that the multipliers come with arch granite and
// arch granite with its multipliers.
func (c LlamaConfig) validateGranite() error {
	switch {
	case c.Arch == "granite" && c.Granite == nil:
		return fmt.Errorf("modelgen: arch granite needs its four multipliers (Granite)")
	case c.Arch != "granite" && c.Granite != nil:
		return fmt.Errorf("modelgen: Granite multipliers need arch granite, not %q", c.Arch)
	case c.Granite != nil:
		return c.Granite.validate()
	}
	return nil
}
