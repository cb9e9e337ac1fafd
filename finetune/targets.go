package finetune

import (
	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
)

// recipeTargets is a recipe's LoRA targets for the base model at path. The
// recipes adapt the query and value projections (q,v); a model with one
// fused Q/K/V matrix (phi3: Phi-3.5-mini, Phi-4-mini) has neither alone, so
// its recipe target is that matrix, qkv, which is also PEFT's default for
// Phi-3. Any other choice, and a base that cannot be read (the trainer says
// why later), keeps the recipe's.
func recipeTargets(path string, recipe llama.Target) llama.Target {
	if recipe != llama.TargetsQV {
		return recipe
	}
	f, err := gguf.Read(path)
	if err != nil {
		return recipe
	}
	if _, fused := f.Tensor("blk.0.attn_qkv.weight"); fused {
		return llama.TargetQKV
	}
	return recipe
}
