// Package finetune turns trajectories recorded in the store into training runs of
// llama.Trainer: the FireAct recipe (arXiv 2310.05915) on small local GGUF models.
//
// The pipeline, one file per stage:
//
//   - dataset.go: choose episodes from the store (by run or dataset, successful
//     ones by reward, methods and tasks mixed by ratios, sampled from a seed) and
//     record the choice as a store Dataset with its recipe.
//   - render.go: render each trajectory into training text, with FireAct's alpaca
//     template (the default) or the model's chat template, and mark the characters
//     the agent wrote; encode.go maps those marks onto tokens as the loss mask.
//   - batch.go: cutoff with truncation counted, a validation split, a deterministic
//     shuffle per epoch and packing of several examples into one step.
//   - schedule.go: warm-up and cosine, linear or constant learning-rate decay.
//   - train.go: the loop, with a progress line, the loss curve in the store,
//     checkpoints, resume after a kill and a clean stop on cancellation.
//
// finetune imports llama (training) and store (data) and never the agent: the two
// meet through trajectories in the store, rendered by store/trajectory so that the
// training text and the agent's prompts cannot drift apart.
package finetune
