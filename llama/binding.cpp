// binding.cpp implements binding.h against llama.cpp. Every function catches C++
// exceptions: one escaping into Go's cgo frames would terminate the process.
#include "binding.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "ggml-backend.h"

namespace {

// Nothing is printed by default: the messages of a failed call come back as its Go error.
std::atomic<int> g_log_level{GGML_LOG_LEVEL_ERROR + 1};

// llama.cpp reports the reason for a failed load or decode only through its log.
// The last ERROR/WARN message of the calling thread is kept so that the fa_*
// function that failed on this thread can return it as the error text. cgo runs a
// whole C call on one OS thread, so thread_local is exact here.
thread_local std::string t_last_msg;
thread_local int t_last_level = -1;

void log_cb(enum ggml_log_level level, const char * text, void * /*user*/) {
    if (text == nullptr) {
        return;
    }
    int lvl = level;
    if (level == GGML_LOG_LEVEL_CONT) {
        lvl = t_last_level;
    } else {
        t_last_level = level;
    }
    if (lvl >= GGML_LOG_LEVEL_WARN && t_last_msg.size() < 4096) {
        // Keep every warning and error of the current call: llama.cpp often logs the
        // specific reason first and a generic "failed to load" last.
        std::string line = text;
        while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) {
            line.pop_back();
        }
        if (!line.empty()) {
            if (!t_last_msg.empty()) {
                t_last_msg += level == GGML_LOG_LEVEL_CONT ? "" : "; ";
            }
            t_last_msg += line;
        }
    }
    if (lvl >= g_log_level.load(std::memory_order_relaxed) && lvl != GGML_LOG_LEVEL_NONE) {
        fputs(text, stderr);
    }
}

void clear_last() {
    t_last_msg.clear();
    t_last_level = -1;
}

void set_err(char * err, size_t err_len, const std::string & prefix) {
    if (err == nullptr || err_len == 0) {
        return;
    }
    std::string msg = prefix;
    std::string last = t_last_msg;
    while (!last.empty() && (last.back() == '\n' || last.back() == ' ')) {
        last.pop_back();
    }
    if (!last.empty()) {
        if (!msg.empty()) {
            msg += ": ";
        }
        msg += last;
    }
    snprintf(err, err_len, "%s", msg.c_str());
}

std::mutex g_env_mu;  // guards the LLAMA_GRAPH_REUSE_DISABLE dance in fa_context_new

}  // namespace

extern "C" {

void fa_init(void) {
    static std::once_flag once;
    std::call_once(once, [] {
        llama_log_set(log_cb, nullptr);
        llama_backend_init();
    });
}

void fa_log_set_level(int level) {
    g_log_level.store(level, std::memory_order_relaxed);
}

int fa_load_backends(const char * dir) {
    try {
        if (dir != nullptr && dir[0] != '\0') {
            ggml_backend_load_all_from_path(dir);
        }
        int n = 0;
        for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
            if (ggml_backend_dev_type(ggml_backend_dev_get(i)) == GGML_BACKEND_DEVICE_TYPE_GPU) {
                n++;
            }
        }
        return n;
    } catch (...) {
        return -1;
    }
}

struct llama_model * fa_model_load(const char * path, struct llama_model_params params, char * err, size_t err_len) {
    clear_last();
    try {
        llama_model * m = llama_model_load_from_file(path, params);
        if (m == nullptr) {
            set_err(err, err_len, "llama.cpp could not load the model");
        }
        return m;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while loading the model");
    }
    return nullptr;
}

struct llama_context * fa_context_new(struct llama_model * model, struct llama_context_params params,
                                      bool graph_reuse, char * err, size_t err_len) {
    clear_last();
    try {
        llama_context * c = nullptr;
        if (graph_reuse) {
            c = llama_init_from_model(model, params);
        } else {
            // llama.cpp reads this variable only in the context constructor.
            std::lock_guard<std::mutex> lock(g_env_mu);
            const char * prev = getenv("LLAMA_GRAPH_REUSE_DISABLE");
            std::string saved = prev ? prev : "";
            setenv("LLAMA_GRAPH_REUSE_DISABLE", "1", 1);
            c = llama_init_from_model(model, params);
            if (prev) {
                setenv("LLAMA_GRAPH_REUSE_DISABLE", saved.c_str(), 1);
            } else {
                unsetenv("LLAMA_GRAPH_REUSE_DISABLE");
            }
        }
        if (c == nullptr) {
            set_err(err, err_len, "llama.cpp could not create the context");
        }
        return c;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while creating the context");
    }
    return nullptr;
}

int32_t fa_decode(struct llama_context * ctx, struct llama_batch batch, char * err, size_t err_len) {
    clear_last();
    try {
        int32_t rc = llama_decode(ctx, batch);
        if (rc != 0) {
            set_err(err, err_len, "");
        }
        return rc;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception in llama_decode");
    }
    return -100;
}

int32_t fa_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
                    llama_token * tokens, int32_t n_max, bool add_special, bool parse_special,
                    char * err, size_t err_len) {
    clear_last();
    try {
        return llama_tokenize(vocab, text, text_len, tokens, n_max, add_special, parse_special);
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception in llama_tokenize");
    }
    return INT32_MIN;
}

struct fa_sampler {
    llama_sampler * grammar = nullptr;     // nullptr without a grammar
    llama_sampler * chain   = nullptr;     // penalties, filters and the final pick
    std::vector<llama_token_data> cur;     // candidates, reused between tokens

    ~fa_sampler() {
        if (grammar != nullptr) {
            llama_sampler_free(grammar);
        }
        if (chain != nullptr) {
            llama_sampler_free(chain);
        }
    }
};

fa_sampler * fa_sampler_new(const struct llama_vocab * vocab, const fa_sampler_params * p,
                            char * err, size_t err_len) {
    clear_last();
    fa_sampler * s = nullptr;
    try {
        s = new fa_sampler();
        if (p->grammar != nullptr && p->grammar[0] != '\0') {
            s->grammar = llama_sampler_init_grammar(vocab, p->grammar, p->grammar_root ? p->grammar_root : "root");
            if (s->grammar == nullptr) {
                set_err(err, err_len, "grammar does not parse");
                delete s;
                return nullptr;
            }
        }
        llama_sampler_chain_params cp = llama_sampler_chain_default_params();
        cp.no_perf = true;
        s->chain = llama_sampler_chain_init(cp);
        if (p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f) {
            llama_sampler_chain_add(s->chain, llama_sampler_init_penalties(p->repeat_last_n, p->repeat_penalty,
                                                                           p->freq_penalty, p->presence_penalty));
        }
        if (p->temp <= 0.0f) {
            llama_sampler_chain_add(s->chain, llama_sampler_init_greedy());
            return s;
        }
        if (p->top_k > 0) {
            llama_sampler_chain_add(s->chain, llama_sampler_init_top_k(p->top_k));
        }
        if (p->top_p < 1.0f) {
            llama_sampler_chain_add(s->chain, llama_sampler_init_top_p(p->top_p, 1));
        }
        if (p->min_p > 0.0f) {
            llama_sampler_chain_add(s->chain, llama_sampler_init_min_p(p->min_p, 1));
        }
        llama_sampler_chain_add(s->chain, llama_sampler_init_temp(p->temp));
        llama_sampler_chain_add(s->chain, llama_sampler_init_dist(p->seed));
        return s;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while building the sampler");
    }
    delete s;
    return nullptr;
}

void fa_sampler_free(fa_sampler * s) {
    delete s;
}

// load_candidates fills s->cur with the logits of row idx and points arr at it.
static bool load_candidates(fa_sampler * s, struct llama_context * ctx, int32_t idx, llama_token_data_array * arr) {
    const float * logits = llama_get_logits_ith(ctx, idx);
    if (logits == nullptr) {
        return false;
    }
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    s->cur.resize(n_vocab);
    for (int32_t t = 0; t < n_vocab; t++) {
        s->cur[t] = llama_token_data{t, logits[t], 0.0f};
    }
    *arr = llama_token_data_array{s->cur.data(), s->cur.size(), -1, false};
    return true;
}

llama_token fa_sample(fa_sampler * s, struct llama_context * ctx, int32_t idx,
                      char * err, size_t err_len) {
    clear_last();
    try {
        llama_token_data_array arr;
        if (!load_candidates(s, ctx, idx, &arr)) {
            set_err(err, err_len, "no logits for this batch row");
            return -1;
        }
        llama_sampler_apply(s->chain, &arr);
        if (arr.selected < 0 || arr.selected >= (int64_t) arr.size) {
            set_err(err, err_len, "sampler chain selected no token");
            return -1;
        }
        llama_token tok = arr.data[arr.selected].id;
        if (s->grammar != nullptr) {
            // Fast path: ask the grammar about the drawn token alone. Without a
            // truncating filter in the chain this is exactly sampling from the
            // grammar-restricted distribution (a rejected draw is redrawn from the
            // renormalised valid set); with top-k/top-p it is llama.cpp's common
            // sampler behaviour.
            llama_token_data one = {tok, 1.0f, 0.0f};
            llama_token_data_array single = {&one, 1, -1, false};
            llama_sampler_apply(s->grammar, &single);
            if (one.logit == -INFINITY) {
                load_candidates(s, ctx, idx, &arr);
                llama_sampler_apply(s->grammar, &arr);
                llama_sampler_apply(s->chain, &arr);
                if (arr.selected < 0 || arr.selected >= (int64_t) arr.size ||
                    arr.data[arr.selected].logit == -INFINITY) {
                    set_err(err, err_len, "the grammar allows no token here");
                    return -1;
                }
                tok = arr.data[arr.selected].id;
            }
            llama_sampler_accept(s->grammar, tok);
        }
        llama_sampler_accept(s->chain, tok);
        return tok;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while sampling");
    }
    return -1;
}

int32_t fa_token_logprobs(struct llama_context * ctx, const int32_t * idx, const llama_token * target,
                          int32_t n, float * out_logprob, uint8_t * out_is_argmax) {
    const llama_model * model = llama_get_model(ctx);
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (int32_t i = 0; i < n; i++) {
        const float * logits = nullptr;
        try {
            logits = llama_get_logits_ith(ctx, idx[i]);
        } catch (...) {
            logits = nullptr;
        }
        if (logits == nullptr || target[i] < 0 || target[i] >= n_vocab) {
            return -1;
        }
        // log_softmax in double: the sum over a 150k vocab loses bits in float.
        float maxv = logits[0];
        int32_t arg = 0;
        for (int32_t v = 1; v < n_vocab; v++) {
            if (logits[v] > maxv) {
                maxv = logits[v];
                arg = v;
            }
        }
        double sum = 0.0;
        for (int32_t v = 0; v < n_vocab; v++) {
            sum += std::exp((double) logits[v] - (double) maxv);
        }
        out_logprob[i] = (float) ((double) logits[target[i]] - (double) maxv - std::log(sum));
        out_is_argmax[i] = (uint8_t) (arg == target[i]);
    }
    return 0;
}

llama_token fa_argmax(struct llama_context * ctx, int32_t idx) {
    const llama_model * model = llama_get_model(ctx);
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    const float * logits = nullptr;
    try {
        logits = llama_get_logits_ith(ctx, idx);
    } catch (...) {
        return -1;
    }
    if (logits == nullptr) {
        return -1;
    }
    int32_t arg = 0;
    for (int32_t v = 1; v < n_vocab; v++) {
        if (logits[v] > logits[arg]) {
            arg = v;
        }
    }
    return arg;
}

struct llama_adapter_lora * fa_adapter_load(struct llama_model * model, const char * path, char * err, size_t err_len) {
    clear_last();
    try {
        llama_adapter_lora * a = llama_adapter_lora_init(model, path);
        if (a == nullptr) {
            set_err(err, err_len, "llama.cpp could not load the adapter");
        }
        return a;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while loading the adapter");
    }
    return nullptr;
}

int32_t fa_quantize(const char * in_path, const char * out_path, int32_t ftype, int32_t n_threads,
                    char * err, size_t err_len) {
    clear_last();
    try {
        llama_model_quantize_params qp = llama_model_quantize_default_params();
        qp.ftype = (llama_ftype) ftype;
        qp.nthread = n_threads;
        uint32_t rc = llama_model_quantize(in_path, out_path, &qp);
        if (rc != 0) {
            set_err(err, err_len, "llama_model_quantize failed");
            return (int32_t) rc;
        }
        return 0;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while quantizing");
    }
    return -1;
}

double fa_bench_greedy(struct llama_context * ctx, const llama_token * prompt, int32_t n_prompt,
                       int32_t n_gen, llama_token * out) {
    try {
        llama_memory_clear(llama_get_memory(ctx), true);
        llama_batch batch = llama_batch_init(std::max(n_prompt, 1), 0, 1);
        for (int32_t i = 0; i < n_prompt; i++) {
            batch.token[i] = prompt[i];
            batch.pos[i] = i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = i == n_prompt - 1;
        }
        batch.n_tokens = n_prompt;
        if (llama_decode(ctx, batch) != 0) {
            llama_batch_free(batch);
            return -1.0;
        }
        auto t0 = std::chrono::steady_clock::now();
        int32_t pos = n_prompt;
        int32_t last = batch.n_tokens - 1;
        for (int32_t i = 0; i < n_gen; i++) {
            llama_token tok = fa_argmax(ctx, last);
            out[i] = tok;
            batch.token[0] = tok;
            batch.pos[0] = pos++;
            batch.n_seq_id[0] = 1;
            batch.seq_id[0][0] = 0;
            batch.logits[0] = 1;
            batch.n_tokens = 1;
            last = 0;
            if (llama_decode(ctx, batch) != 0) {
                llama_batch_free(batch);
                return -1.0;
            }
        }
        auto t1 = std::chrono::steady_clock::now();
        llama_batch_free(batch);
        return std::chrono::duration<double>(t1 - t0).count();
    } catch (...) {
        return -1.0;
    }
}

}  // extern "C"
