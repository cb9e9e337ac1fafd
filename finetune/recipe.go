package finetune

import (
	"fmt"
	"strings"

	"github.com/fireact/fireact/llama"
)

// TrainingRecipe names a set of training defaults; Config fields left zero take the
// recipe's value.
type TrainingRecipe string

// Recipes.
const (
	// RecipeAgent is this project's default: loss on the agent's tokens only (the
	// question and the observations are context, not something to imitate), a
	// cutoff of 1024 so the finish action survives small models' longer
	// tokenizations, and an optimizer step of one packed batch.
	RecipeAgent TrainingRecipe = "agent"
	// RecipeFireAct reproduces FireAct's Llama LoRA run (see fireActRecipe).
	RecipeFireAct TrainingRecipe = "fireact"
)

// ParseRecipe checks a recipe name ("" is agent).
func ParseRecipe(s string) (TrainingRecipe, error) {
	switch r := TrainingRecipe(strings.ToLower(s)); r {
	case RecipeAgent, RecipeFireAct:
		return r, nil
	case "":
		return RecipeAgent, nil
	}
	return "", fmt.Errorf("finetune: unknown recipe %q (want agent or fireact)", s)
}

// recipeValues are the settings a recipe decides.
type recipeValues struct {
	Rank, Cutoff, MaxTokens, BatchExamples, Epochs, EvalEvery, SaveEvery int
	LoRADropout, LR, Val, Warmup                                         float64
	Targets                                                              llama.Target
	Schedule                                                             Schedule
	TrainOnInputs, KeepBest                                              bool
}

// agentRecipe: see RecipeAgent and the Default constants.
var agentRecipe = recipeValues{
	Rank: DefaultRank, Targets: llama.TargetsQV, LR: DefaultLR,
	Cutoff: DefaultCutoff, MaxTokens: DefaultMaxTokens, Epochs: DefaultEpochs, Val: DefaultVal,
	Warmup: DefaultWarmup, EvalEvery: DefaultEvalEvery, SaveEvery: DefaultSaveEvery, Schedule: ScheduleLinear,
}

// fireActRecipe is FireAct's fine-tuning run, from github.com/anchen1011/FireAct
// (finetune/llama_lora/finetune.py, an alpaca-lora fork, and the command line in
// finetune/README.md, "Llama/CodeLlama LoRA"):
//
//   - BatchExamples 128: finetune.py:28 batch_size=128; the optimizer step is
//     gradient_accumulation_steps = batch_size // micro_batch_size (finetune.py:69)
//     micro-batches of micro_batch_size 16 (README: --micro_batch_size 16).
//   - MaxTokens 8192: 16 examples of at most 512 tokens, the README micro-batch
//     in tokens (a micro-batch only bounds memory; accumulation makes the step
//     the same whatever its size).
//   - Epochs 30: README --num_epochs 30 (finetune.py:30 defaults to 3).
//   - LR 3e-4: finetune.py:31; linear decay: transformers' default
//     lr_scheduler_type, the TrainingArguments at finetune.py:193-210 set none.
//   - Cutoff 512: README --cutoff_len 512 (finetune.py:32).
//   - Val 0.01: README --val_set_size 0.01, a fraction for train_test_split
//     (finetune.py:179-181).
//   - Rank 8, Alpha 16 (2·rank), LoRADropout 0.05, targets q_proj,v_proj: finetune.py:35-41.
//   - TrainOnInputs: finetune.py:43 train_on_inputs=True (loss on the whole text).
//   - Warmup 100 steps: finetune.py:196 warmup_steps=100.
//   - EvalEvery, SaveEvery 200: finetune.py:203-204 eval_steps=200, save_steps=200.
//   - KeepBest: finetune.py:207 load_best_model_at_end=True with val_set_size > 0
//     (by eval loss, transformers' default metric_for_best_model).
//   - Template alpaca: generate_prompt, finetune.py:227-247.
//
// Not reproduced: group_by_length (finetune.py:44, a length-sorted sampler; we
// shuffle per epoch), the 8-bit base and fp16 (finetune.py:81, 199), the split
// seed 42 (ours is Config.Seed), transformers' first step at learning rate 0 (its
// scheduler is stepped after the optimizer; ours reaches the peak at step
// warm-up), and its loss normalisation of 2023, a mean of per-micro-batch means
// (ours is the mean over every scored token of the step, as one big batch — what
// transformers 4.46 changed to).
var fireActRecipe = recipeValues{
	Rank: 8, LoRADropout: 0.05, Targets: llama.TargetsQV, LR: 3e-4,
	Cutoff: 512, MaxTokens: 16 * 512, BatchExamples: 128, Epochs: 30, Val: 0.01,
	Warmup: 100, EvalEvery: 200, SaveEvery: 200, Schedule: ScheduleLinear,
	TrainOnInputs: true, KeepBest: true,
}

func (r TrainingRecipe) values() recipeValues {
	if r == RecipeFireAct {
		return fireActRecipe
	}
	return agentRecipe
}
