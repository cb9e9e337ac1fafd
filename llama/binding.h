// binding.h declares the C functions fireact's Go code calls besides llama.h itself.
//
// The rule for this seam: every llama.cpp entry point that can throw a C++ exception,
// abort on bad input, or needs a loop that would cost one cgo call per element, goes
// through a fa_* function implemented in binding.cpp. Plain getters of llama.h are
// called from Go directly. Nothing here keeps a pointer to Go memory after returning.
#ifndef FIREACT_BINDING_H
#define FIREACT_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

// Process-wide set-up: initialises the llama.cpp backend and routes its log (and
// ggml's) through fireact's filter. Safe to call more than once.
void fa_init(void);

// Minimum ggml_log_level printed to stderr (GGML_LOG_LEVEL_ERROR by default).
void fa_log_set_level(int level);

// Loads dynamic ggml backends (e.g. libggml-cuda.so) found in dir. Returns the
// number of GPU devices registered afterwards.
int fa_load_backends(const char * dir);

// Loads a model. On failure returns NULL and writes a message to err.
struct llama_model * fa_model_load(const char * path, struct llama_model_params params,
                                   char * err, size_t err_len);

// Creates a context. graph_reuse=false disables llama.cpp's graph reuse, which
// otherwise keeps using a graph built before an adapter change (see context.go).
struct llama_context * fa_context_new(struct llama_model * model, struct llama_context_params params,
                                      bool graph_reuse, char * err, size_t err_len);

// Decodes a batch. Returns llama_decode's status (0 ok, 1 no KV slot, 2 aborted,
// <0 error), or -100 when an exception was caught (message in err).
int32_t fa_decode(struct llama_context * ctx, struct llama_batch batch, char * err, size_t err_len);

// Tokenize with exception safety; returns llama_tokenize's result, or INT32_MIN on an
// exception (message in err).
int32_t fa_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
                    llama_token * tokens, int32_t n_max, bool add_special, bool parse_special,
                    char * err, size_t err_len);

// Sampler chain parameters. temp <= 0 means greedy (argmax) after the filters.
typedef struct fa_sampler_params {
    float    temp;
    int32_t  top_k;           // <= 0: off
    float    top_p;           // >= 1: off
    float    min_p;           // <= 0: off
    float    repeat_penalty;  // 1: off
    int32_t  repeat_last_n;   // tokens considered by the penalty
    float    freq_penalty;    // 0: off
    float    presence_penalty;// 0: off
    uint32_t seed;
    const char * grammar;     // GBNF text or NULL
    const char * grammar_root;// rule name, "root" when NULL
} fa_sampler_params;

// A sampler: the grammar (if any) kept apart from the chain of penalties and
// filters, and a candidate buffer reused from token to token.
typedef struct fa_sampler fa_sampler;

// Builds a sampler; NULL with a message in err when the grammar does not parse.
fa_sampler * fa_sampler_new(const struct llama_vocab * vocab, const fa_sampler_params * p,
                            char * err, size_t err_len);

// Frees a sampler (NULL is a no-op).
void fa_sampler_free(fa_sampler * s);

// For n output rows of the last decode (row indices idx[i] in the batch), writes
// log p(target[i]) under the model's distribution and whether target[i] was the
// argmax (greedy) token. Returns 0, or -1 if a row has no logits.
int32_t fa_token_logprobs(struct llama_context * ctx, const int32_t * idx, const llama_token * target,
                          int32_t n, float * out_logprob, uint8_t * out_is_argmax);

// Samples a token from batch row idx and accepts it into the grammar and the chain.
// With a grammar, the token is first drawn without it and kept if the grammar
// accepts it; only a rejected draw pays for filtering the whole vocabulary (llama.cpp's
// common sampler does the same). Returns -1 with a message in err when the sampler
// throws (e.g. a grammar that reached a dead end). Distinct samplers may be used
// from different threads at once on the same context's logits.
llama_token fa_sample(fa_sampler * s, struct llama_context * ctx, int32_t idx,
                      char * err, size_t err_len);

// Greedy argmax over the logits of batch row idx (no sampler allocation).
llama_token fa_argmax(struct llama_context * ctx, int32_t idx);

// Loads a LoRA adapter with exception safety.
struct llama_adapter_lora * fa_adapter_load(struct llama_model * model, const char * path,
                                            char * err, size_t err_len);

// Quantizes a model file (llama_model_quantize) with exception safety; returns 0 on success.
int32_t fa_quantize(const char * in_path, const char * out_path, int32_t ftype, int32_t n_threads,
                    char * err, size_t err_len);

// Reference loop for the binding-overhead benchmark: decodes the prompt, then n_gen
// greedy tokens one at a time for one sequence, entirely in C. Returns the seconds
// spent in the generation phase, or a negative value on error. Generated tokens are
// written to out (capacity n_gen).
double fa_bench_greedy(struct llama_context * ctx, const llama_token * prompt, int32_t n_prompt,
                       int32_t n_gen, llama_token * out);

#ifdef __cplusplus
}
#endif

#endif // FIREACT_BINDING_H
