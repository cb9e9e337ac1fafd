// Package agent is fireact's FireAct loop: it drives an LLM and tools through
// ReAct, CoT, Reflexion or IO episodes on the questions of a task, records every
// episode with its steps in the store, and resumes interrupted runs.
//
// The seams are small interfaces defined here and implemented beside them:
//
//   - LLM: Complete(ctx, Request) (Response, error). LocalLLM serves requests from
//     the batched llama engine (questions in flight decode together and share the
//     few-shot prefix in the KV cache); OpenAI talks to any OpenAI-compatible
//     server with retries, a concurrency limit and cost accounting.
//   - Tool: Call(ctx, action, arg) (Observation, error). Search backends
//     (LocalSearch over the store's FTS5 corpus, SerpAPI, Replay) are Tools; Cache
//     and Noise wrap any Tool, and what they did is recorded on the step.
//     LocalSearch in SearchStyleReAct also answers lookup, ReAct's Wikipedia
//     action (package wikienv), from the episode's earlier calls that the
//     loop passes in the context (WithToolHistory).
//   - tasks.Task: a split of questions with its metric.
//   - Method: ReAct, CoT, Reflexion and IO are one loop (Agent.Solve) with
//     different prompts and stop rules.
//
// Trajectories are store/trajectory values and are rendered to text with
// trajectory.Render*, the same renderer finetune trains with, so the text a
// student sees at evaluation is the text it was trained on.
package agent
