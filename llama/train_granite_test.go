package llama

import (
	"math"
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// graniteScales are the test's four multipliers, each far from the value
// that leaves the model unchanged, so leaving one out moves the logits.
// Granite-3's own (granite-3.1-2b: embedding 12, attention 0.015625,
// residual 0.22, logits 8) make a model this small nearly uniform: its
// q/k gradients fall below what a float32 finite difference resolves, so
// the gradient check would pass vacuously. These keep every gradient
// measurable.
var graniteScales = modelgen.GraniteScales{EmbeddingMultiplier: 2, AttentionMultiplier: 0.5, ResidualMultiplier: 1.5, LogitsScaling: 0.5}

// graniteCase is a Granite-3-dense-shaped model: llama's tensors under arch
// granite, tied embeddings, GQA 4:1, its four multipliers.
func graniteCase() exactCase {
	s := graniteScales
	return exactCase{"granite", modelgen.LlamaConfig{Arch: "granite", Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 128, NLayer: 2, NHead: 8, NHeadKV: 2, NFF: 256, NCtx: 512, RopeFreqBase: 10000, RMSEps: 1e-5,
		TiedOutput: true, Seed: 61, Granite: &s}, TargetsAll, nil}
}

// TestTrainGraniteExact: a Granite-3-shaped model is reproduced exactly
// (checkExact), and each multiplier set to its neutral value (1, or
// 1/sqrt(head size) for the attention scale) decodes differently, so the
// comparison sees every one of them.
func TestTrainGraniteExact(t *testing.T) {
	c := graniteCase()
	dir := t.TempDir()
	run := checkExact(t, dir, c)
	head := float32(c.cfg.NEmbd / c.cfg.NHead)
	for _, ctl := range []struct {
		name string
		set  func(*modelgen.GraniteScales)
	}{
		{"embedding", func(s *modelgen.GraniteScales) { s.EmbeddingMultiplier = 1 }},
		{"attention", func(s *modelgen.GraniteScales) { s.AttentionMultiplier = 1 / float32(math.Sqrt(float64(head))) }},
		{"residual", func(s *modelgen.GraniteScales) { s.ResidualMultiplier = 1 }},
		{"logits", func(s *modelgen.GraniteScales) { s.LogitsScaling = 1 }},
	} {
		cfg := c.cfg
		s := *cfg.Granite
		ctl.set(&s)
		cfg.Granite = &s
		d := controlMoves(t, dir, "granite-no-"+ctl.name, cfg, run)
		if d < 1e-4 {
			t.Errorf("without the %s multiplier llama_decode is within %g of the training forward: the test cannot see it", ctl.name, d)
		}
		t.Logf("without the %s multiplier, logits move by %.3g", ctl.name, d)
	}
}
