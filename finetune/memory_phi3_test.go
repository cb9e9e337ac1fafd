package finetune

import (
	"path/filepath"
	"testing"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/modelgen"
)

// TestReadModelShapePhi3: a phi3 model's fused matrices are read as they
// are (attn_qkv, ffn_up of 2·n_ff rows), with the K/V and feed-forward
// widths they hold, and its targets are counted by the estimate.
func TestReadModelShapePhi3(t *testing.T) {
	path := filepath.Join(t.TempDir(), "phi.gguf")
	cfg := modelgen.Phi3Config{Vocab: modelgen.SPMVocab(modelgen.BasicWords()), NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2,
		NFF: 96, PartialRotary: 0.75}
	if err := modelgen.WritePhi3(path, cfg); err != nil {
		t.Fatal(err)
	}
	s, err := ReadModelShape(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.NEmbdKV != 32 || s.NFF != 96 || len(s.Matrices) != 2*4+1 {
		t.Fatalf("shape %+v", s)
	}
	if m := s.Matrices[0]; m != (Matrix{Kind: "attn_qkv", In: 64, Out: 64 + 2*32, Type: m.Type}) {
		t.Fatalf("blk.0.attn_qkv %+v", m)
	}
	qkv := EstimateMemory(s, MemoryPlan{Tokens: 64, Rank: 8, Targets: llama.TargetQKV}).Trainable
	all := EstimateMemory(s, MemoryPlan{Tokens: 64, Rank: 8, Targets: llama.TargetsAll}).Trainable
	if want := int64(5 * 4 * 8 * (64 + 128) * 2); qkv != want || all <= qkv {
		t.Fatalf("trainable bytes: qkv %d (want %d), all %d", qkv, want, all)
	}
}

// TestRecipeTargetsPhi3: the recipes' q,v becomes qkv on a fused-QKV model
// (phi3 has no attn_q or attn_v, and the trainer refuses q,v there), and
// stays q,v on a llama model.
func TestRecipeTargetsPhi3(t *testing.T) {
	dir := t.TempDir()
	phi := filepath.Join(dir, "phi.gguf")
	if err := modelgen.WritePhi3(phi, modelgen.Phi3Config{Vocab: modelgen.SPMVocab(modelgen.BasicWords()), NEmbd: 32, NLayer: 1, NHead: 2, NFF: 32}); err != nil {
		t.Fatal(err)
	}
	ll := filepath.Join(dir, "llama.gguf")
	if err := modelgen.WriteLlama(ll, modelgen.LlamaConfig{Vocab: modelgen.SPMVocab(modelgen.BasicWords()), NEmbd: 32, NLayer: 1, NHead: 2, NFF: 32}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []TrainingRecipe{RecipeAgent, RecipeFireAct} {
		if got := recipeTargets(phi, r.values().Targets); got != llama.TargetQKV {
			t.Errorf("%s on phi3: targets %v, want qkv", r, got)
		}
		if got := recipeTargets(ll, r.values().Targets); got != llama.TargetsQV {
			t.Errorf("%s on llama: targets %v, want q,v", r, got)
		}
	}
	if got := recipeTargets(phi, llama.TargetsAll); got != llama.TargetsAll {
		t.Errorf("all on phi3 became %v", got)
	}
}
