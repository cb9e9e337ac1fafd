package llama

import (
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// smollm3Case is a SmolLM3-shaped model: llama's tensors under arch
// smollm3, tied embeddings, no BOS, GQA 4:1 and RoPE base 5e6 (SmolLM3-3B's),
// with four layers so that layer 3 is a NoPE layer (llama.cpp's fixed
// interval of 4, modelgen.SmolLM3UsesRope). The gradient check probes
// layer 2 (RoPE) and layer 3 (NoPE), every target of each.
func smollm3Case() exactCase {
	return exactCase{"smollm3", modelgen.LlamaConfig{Arch: "smollm3", Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 4, NHead: 4, NHeadKV: 1, NFF: 128, NCtx: 512, RopeFreqBase: 5e6, RMSEps: 1e-6,
		TiedOutput: true, NoAddBOS: true, Seed: 51}, TargetsAll, []int{2, 3}}
}

// TestTrainSmolLM3Exact: a SmolLM3-shaped model is reproduced exactly
// (checkExact), and the same weights as arch llama (RoPE on every layer)
// decode differently, so the comparison sees the NoPE layer.
func TestTrainSmolLM3Exact(t *testing.T) {
	c := smollm3Case()
	if modelgen.SmolLM3UsesRope(c.cfg.NLayer - 1) {
		t.Fatalf("layer %d of %d uses RoPE: the case has no NoPE layer", c.cfg.NLayer-1, c.cfg.NLayer)
	}
	dir := t.TempDir()
	run := checkExact(t, dir, c)
	rope := c.cfg
	rope.Arch = "llama"
	if d := controlMoves(t, dir, "smollm3-all-rope", rope, run); d < 1e-4 {
		t.Fatalf("RoPE on every layer decodes within %g of the training forward: the test cannot see the NoPE layer", d)
	} else {
		t.Logf("with RoPE on the NoPE layer too, logits move by %.3g", d)
	}
}
