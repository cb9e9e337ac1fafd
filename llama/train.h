// train.h declares fireact's training glue: LoRA (and full-parameter) training of
// llama-family GGUF models with our own ggml training graph. See
// ../shared/design/lora-training.md for why llama.cpp's llama_opt_* cannot be used
// (KV-cache writes abort autodiff, gradient accumulators never reset, no loss
// masking, in-place RMS_NORM_BACK corrupts CPU gradients).
#ifndef FIREACT_TRAIN_H
#define FIREACT_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

// LoRA target bits.
enum fa_target {
    FA_T_Q = 1, FA_T_K = 2, FA_T_V = 4, FA_T_O = 8,
    FA_T_GATE = 16, FA_T_UP = 32, FA_T_DOWN = 64, FA_T_OUTPUT = 128,
    FA_T_QKV = 256,  // a fused Q/K/V projection (phi3's blk.N.attn_qkv.weight)
};

typedef struct fa_train_params {
    int32_t  rank;          // LoRA rank
    float    alpha;         // LoRA alpha (scale = alpha/rank)
    uint32_t targets;       // fa_target bits
    bool     full;          // full-parameter training of every F32 tensor instead of LoRA
    int32_t  n_threads;
    int32_t  optimizer;     // 0 AdamW, 1 SGD
    float    weight_decay, beta1, beta2, eps;
    uint32_t seed;          // initialisation of A
    bool     f32_base;      // F32 copies of every frozen matrix (fast backward, more memory)
    bool     f32_head;      // F32 copy of the output matrix (a quantized head is very slow)
    // How the gradient flows back through frozen weights (dx = W^T·dy):
    // 0 ggml's autodiff (OUT_PROD, which re-reads/dequantizes W per token: slow),
    // 1 a pre-transposed F32 copy of W and the fast MUL_MAT kernels,
    // 2 the same with a Q8_0 transposed copy (4x less memory, approximate dx),
    // 3 transient: W dequantized and transposed inside the graph each step, so
    //   no copy outlives the layer that uses it (least memory, exact dx).
    int32_t  backward;
    // LoRA dropout probability on each adapter's input (PEFT's lora_dropout:
    // B·A·dropout(x), the frozen W·x untouched), training steps only. The masks
    // are drawn from (seed, step, micro-batch, site), so a resumed run draws the
    // same ones.
    float    lora_dropout;
    // Gradient checkpointing (LoRA only): a training step first runs the
    // forward block by block keeping only each block's input, then for each
    // block from the last recomputes its forward and backpropagates through it
    // alone. Activations of one block at a time instead of all of them, for
    // about one more forward per step; the gradient is the same computation.
    bool     checkpoint;
    // With checkpoint: the number of blocks at the top whose activations the
    // step keeps from one forward, run with the head in one graph, instead of
    // recomputing them (clamped to [1, n_layer]: recomputing the top block
    // would directly follow its own forward). Each one more saves a block's
    // forward and holds a block's activations.
    int32_t  checkpoint_keep;
    // The context per sequence the adapter will be served at (llama.cpp's
    // n_ctx / parallel sequences), rounded up to 256 as llama.cpp rounds it;
    // 0: the reference context's. LongRoPE models (phi3) pick their RoPE
    // factor table by it: long above the original context, short otherwise.
    uint32_t n_ctx_serve;
} fa_train_params;

typedef struct fa_trainer fa_trainer;

// Creates a trainer. ctx_ref is an inference context of the same model, read once
// for its RoPE/YaRN parameters. resume_adapter (or NULL) loads A/B from an adapter.
fa_trainer * fa_train_init(struct llama_model * model, struct llama_context * ctx_ref,
                           const fa_train_params * p, const char * resume_adapter,
                           char * err, size_t err_len);

// One optimizer step (train=true) or a forward pass only (train=false) over packed
// sequences: seq_start[s] is the first token of sequence s (seq_start[0] == 0);
// attention is block-diagonal and positions restart per sequence. target[i] != 0
// scores token i (predicted from its prefix within its sequence). Writes the mean
// NLL over scored tokens and their count. token_weight, when not NULL, holds a
// weight per token (read where target is set): the loss is then
// -(1/n_scored) * sum of weight * log p (weights may be negative).
// Returns 0 or -1 (message in err).
int32_t fa_train_step(fa_trainer * t, const llama_token * tokens, const uint8_t * target, const float * token_weight,
                      int32_t n_tokens, const int32_t * seq_start, int32_t n_seqs, bool train, float lr,
                      float * loss, int32_t * n_scored, char * err, size_t err_len);

// Gradient accumulation: fa_train_accumulate runs forward and backward over one
// micro-batch and adds weight times its gradient (of the mean NLL over its scored
// tokens) to per-parameter accumulators; first=true zeroes them first. With weight
// = the micro-batch's scored tokens / the step's, the sum is the gradient of one
// batch holding every micro-batch. fa_train_apply then takes one optimizer step
// with the accumulated gradient. Returns 0 or -1 (message in err).
int32_t fa_train_accumulate(fa_trainer * t, const llama_token * tokens, const uint8_t * target, const float * token_weight,
                            int32_t n_tokens, const int32_t * seq_start, int32_t n_seqs, float weight, bool first,
                            float * loss, int32_t * n_scored, char * err, size_t err_len);
int32_t fa_train_apply(fa_trainer * t, float lr, char * err, size_t err_len);

// Log-probability of every scored token of a packed batch (as fa_train_step
// reads it) under the current weights, without dropout: out[k] for the k-th
// scored token. Returns the number written, or -1 (message in err).
int32_t fa_train_token_logprobs(fa_trainer * t, const llama_token * tokens, const uint8_t * target, int32_t n_tokens,
                                const int32_t * seq_start, int32_t n_seqs, float * out, int32_t out_len, char * err,
                                size_t err_len);

// Saves the LoRA adapter (llama.cpp's format) or, for full training, the model.
// keys[i]/vals[i] (n_kv pairs, NULL when 0) are extra string metadata of the
// adapter: each key must start with "fireact." so it can never replace the keys
// llama.cpp reads (general.*, adapter.*); they are ignored for full training.
// The strings are copied; the caller keeps ownership.
int32_t fa_train_save(fa_trainer * t, const char * path, const char * const * keys, const char * const * vals,
                      int32_t n_kv, char * err, size_t err_len);

// Saves / loads the trainable tensors, optimizer moments and step counter.
int32_t fa_train_save_state(fa_trainer * t, const char * path, char * err, size_t err_len);
int32_t fa_train_load_state(fa_trainer * t, const char * path, char * err, size_t err_len);

int64_t fa_train_n_steps(const fa_trainer * t);
int32_t fa_train_n_params(const fa_trainer * t);          // trainable tensors
int64_t fa_train_n_param_elements(const fa_trainer * t);  // trainable numbers
const char * fa_train_param_name(const fa_trainer * t, int32_t i);
int64_t fa_train_param_size(const fa_trainer * t, int32_t i);
// Copies a trainable tensor's values out of / into the trainer (for tests and tools).
int32_t fa_train_param_get(fa_trainer * t, int32_t i, float * dst, int64_t n);
int32_t fa_train_param_set(fa_trainer * t, int32_t i, const float * src, int64_t n);

// Runs the training forward over one sequence and writes every position's logits
// (n * n_vocab floats) to out. For equivalence tests against llama_decode.
int32_t fa_train_logits(fa_trainer * t, const llama_token * tokens, int32_t n, float * out, char * err, size_t err_len);

// Makes the forward compute the smooth functions whose gradient the graph
// takes where llama_decode's op has no backward (Gemma's GELU, read from an F16
// table on the CPU, and tanh), instead of those ops' own values: for
// finite-difference checks of the gradient, which a staircase forward hides.
void fa_train_set_smooth_forward(fa_trainer * t, bool on);

// The RoPE frequency-factor table the graph uses, as llama.cpp picks it for
// the serving context: "long" or "short" for LongRoPE models, "" for any
// other (one table or none). Saved adapters record it as fireact.rope_factors.
const char * fa_train_rope_factors(const fa_trainer * t);

void fa_train_free(fa_trainer * t);

#ifdef __cplusplus
}
#endif

#endif // FIREACT_TRAIN_H
