// train.cpp implements train.h: a llama-family training graph of our own on ggml.
//
// Why not llama_opt_*: see ../shared/design/lora-training.md. In short, the stock
// path writes K/V into the KV cache inside the differentiated graph (autodiff
// aborts), never resets gradient accumulators, cannot mask the loss, and the CPU
// RMS_NORM_BACK kernel is not alias-safe. Here the forward has no KV cache and no
// flash attention, only scored rows reach lm_head, gradients are fresh every step,
// and the optimizer step runs in the same graph.
//
// The LoRA math is exactly llama.cpp's build_lora_mm (W·x + scale·B·(A·x)), so an
// adapter saved here and loaded by llama_adapter_lora_init gives the same logits.
#include "train.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"
#include "gguf.h"
#include "llama-context.h"
#include "llama-model.h"

namespace {

struct lora_pair {
    ggml_tensor * a = nullptr;  // [n_in, r]
    ggml_tensor * b = nullptr;  // [r, n_out]
};

struct param {
    std::string   name;
    ggml_tensor * t = nullptr;  // trainable, F32
    ggml_tensor * m = nullptr;  // AdamW first moment
    ggml_tensor * v = nullptr;  // AdamW second moment
    ggml_tensor * acc = nullptr;  // accumulated gradient (fa_train_accumulate)
    bool          has_grad = false;  // acc holds a gradient since it was zeroed
};

void set_err(char * err, size_t n, const std::string & msg) {
    if (err != nullptr && n > 0) {
        snprintf(err, n, "%s", msg.c_str());
    }
}

}  // namespace

struct fa_trainer {
    llama_model *   model = nullptr;
    fa_train_params p{};
    llama_cparams   cparams{};
    float           scale = 1.0f;  // alpha / rank
    int             graph_size = 0;

    ggml_backend_t       backend_dev = nullptr;  // GPU holding weights, if any
    ggml_backend_t       backend_cpu = nullptr;
    ggml_backend_sched_t sched = nullptr;

    ggml_context *        ctx_static = nullptr;  // A/B, moments, F32 copies, loss grad
    ggml_backend_buffer_t buf_static = nullptr;
    ggml_context *        ctx_host = nullptr;  // optimizer hyper-parameters
    ggml_backend_buffer_t buf_host = nullptr;
    ggml_tensor *         opt_params = nullptr;
    ggml_tensor *         loss_grad = nullptr;

    std::unordered_map<const ggml_tensor *, lora_pair>     lora;
    std::unordered_map<const ggml_tensor *, ggml_tensor *> copies;
    // transposed: weight as used in the graph -> its transposed copy, for dx = W^T·dy.
    std::unordered_map<const ggml_tensor *, ggml_tensor *> transposed;
    std::vector<std::pair<const ggml_tensor *, ggml_tensor *>> transpose_list;
    std::vector<std::pair<const ggml_tensor *, ggml_tensor *>> copy_list;  // to fill after allocation
    std::vector<param> params;
    std::string        rope_factors;  // fa_train_rope_factors
    int64_t            step = 0;
    int32_t            micro = 0;  // micro-batch of the current step (dropout masks)
    // While a training graph is built, the LoRA dropout masks it uses (inputs filled
    // after allocation); nullptr when no dropout applies (evaluation, p = 0).
    mutable std::vector<ggml_tensor *> * drop_masks = nullptr;
    // The sliding-window layers' attention mask of the graph last built, or
    // nullptr when the model has none (filled by set_swa_mask).
    ggml_tensor * inp_mask_swa = nullptr;
    bool          smooth_forward = false;  // fa_train_set_smooth_forward

    ~fa_trainer() {
        if (sched) ggml_backend_sched_free(sched);
        if (buf_static) ggml_backend_buffer_free(buf_static);
        if (buf_host) ggml_backend_buffer_free(buf_host);
        if (ctx_static) ggml_free(ctx_static);
        if (ctx_host) ggml_free(ctx_host);
        if (backend_dev) ggml_backend_free(backend_dev);
        if (backend_cpu) ggml_backend_free(backend_cpu);
    }

    // w returns the tensor to use for a frozen weight: its F32 copy if one was made.
    ggml_tensor * w(const ggml_tensor * t) const {
        auto it = copies.find(t);
        return it != copies.end() ? it->second : const_cast<ggml_tensor *>(t);
    }

    // mm is build_lora_mm: W·x (+ scale·B·(A·x) when t has a LoRA pair).
    ggml_tensor * mm(ggml_context * ctx, const ggml_tensor * t, ggml_tensor * x) const {
        ggml_tensor * res = ggml_mul_mat(ctx, w(t), x);
        auto it = lora.find(t);
        if (it != lora.end()) {
            ggml_tensor * xa = x;
            if (drop_masks != nullptr) {
                // PEFT's lora_dropout: the adapter sees dropout(x), W still sees x.
                // ggml has no dropout op autodiff knows, so the mask (0 or
                // 1/(1-p)) is an input tensor drawn on the host.
                ggml_tensor * mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, x->ne[0], x->ne[1]);
                ggml_set_input(mask);
                drop_masks->push_back(mask);
                xa = ggml_mul(ctx, x, mask);
            }
            ggml_tensor * ab = ggml_mul_mat(ctx, it->second.b, ggml_mul_mat(ctx, it->second.a, xa));
            ab = ggml_scale(ctx, ab, scale);
            res = ggml_add(ctx, res, ab);
        }
        return res;
    }
};

namespace {

bool is_gemma(llm_arch a) { return a == LLM_ARCH_GEMMA2 || a == LLM_ARCH_GEMMA3; }

bool arch_supported(llm_arch a) {
    return a == LLM_ARCH_LLAMA || a == LLM_ARCH_QWEN2 || a == LLM_ARCH_QWEN3 || is_gemma(a) || a == LLM_ARCH_PHI3 || a == LLM_ARCH_SMOLLM3 ||
           a == LLM_ARCH_GRANITE;
}

// unused_tensor returns the name of the first tensor llama.cpp loaded that is
// not among used (the tensors the family's training graph reads), or "": such
// a tensor (an FFN or output bias, ...) changes llama_decode's result, so the
// graph would silently differ.
std::string unused_tensor(const llama_model & m, const std::vector<const ggml_tensor *> & used) {
    for (const auto & kv : m.tensors_by_name) {
        if (std::find(used.begin(), used.end(), kv.second) == used.end()) return kv.first;
    }
    return "";
}

// gemma_used lists every tensor build_forward_gemma reads.
std::vector<const ggml_tensor *> gemma_used(const llama_model & m) {
    std::vector<const ggml_tensor *> out = {m.tok_embd, m.output_norm, m.output};
    for (const auto & L : m.layers) {
        for (const ggml_tensor * t : {L.attn_norm, L.wq, L.wk, L.wv, L.wo, L.attn_post_norm, L.ffn_norm, L.ffn_gate, L.ffn_up,
                                      L.ffn_down, L.ffn_post_norm, L.attn_q_norm, L.attn_k_norm}) {
            if (t != nullptr) out.push_back(t);
        }
    }
    return out;
}

// check_gemma refuses a Gemma-2/3 model the Gemma graph does not reproduce:
// a norm missing, a sliding-window kind other than llama.cpp's standard
// one, or any tensor the graph would not read (named).
std::string check_gemma(const llama_model & m) {
    const auto & hp = m.hparams;
    if (hp.swa_type != LLAMA_SWA_TYPE_NONE && hp.swa_type != LLAMA_SWA_TYPE_STANDARD) {
        return "only standard sliding-window attention is supported for training";
    }
    for (size_t il = 0; il < m.layers.size(); il++) {
        const auto & L = m.layers[il];
        const bool qk_norm = m.arch == LLM_ARCH_GEMMA3;
        if (!L.attn_norm || !L.attn_post_norm || !L.ffn_norm || !L.ffn_post_norm ||
            (qk_norm && (!L.attn_q_norm || !L.attn_k_norm))) {
            return "layer " + std::to_string(il) + " lacks one of the norms of " + llm_arch_name(m.arch);
        }
    }
    if (std::string t = unused_tensor(m, gemma_used(m)); !t.empty()) {
        return "tensor " + t + " is not used by the " + llm_arch_name(m.arch) + " training graph";
    }
    return "";
}

std::string check_phi3(const llama_model & m);

// uses_rope says whether layer il rotates Q and K, as the family's llama.cpp
// graph decides: SmolLM3 attends without RoPE on every n_no_rope_layer_step-th
// layer (smollm3.cpp; llama-model.cpp fixes the step at 4, no key is read).
bool uses_rope(const llama_model & m, int il) {
    if (m.arch == LLM_ARCH_SMOLLM3) return (il + 1) % m.hparams.n_no_rope_layer_step != 0;
    return true;
}

// any_rope says whether a block of [l0, l1) rotates: only then does the graph
// read positions (a checkpointed segment of one NoPE block has no position
// input, which the scheduler would leave unallocated).
bool any_rope(const llama_model & m, int l0, int l1) {
    for (int il = l0; il < l1; il++) {
        if (uses_rope(m, il)) return true;
    }
    return false;
}

// granite_residual scales a block's attention or FFN output before its
// residual add, as granite.cpp does (when residual_scale is nonzero).
ggml_tensor * granite_residual(const llama_model & m, ggml_context * ctx, ggml_tensor * cur) {
    if (m.arch != LLM_ARCH_GRANITE || m.hparams.f_residual_scale == 0.0f) return cur;
    return ggml_scale(ctx, cur, m.hparams.f_residual_scale);
}

// granite_logits divides the logits by logit_scale, as granite.cpp does
// after lm_head.
ggml_tensor * granite_logits(const llama_model & m, ggml_context * ctx, ggml_tensor * logits) {
    if (m.arch != LLM_ARCH_GRANITE) return logits;
    return ggml_scale(ctx, logits, 1.0f / m.hparams.f_logit_scale);
}

// check_granite refuses what granite.cpp does that the graph does not:
// rope.scaling.finetuned false switches RoPE off for the whole model, and a
// zero logit scale would divide by zero.
std::string check_granite(const llama_model & m) {
    if (m.arch != LLM_ARCH_GRANITE) return "";
    if (!m.hparams.rope_finetuned) return "granite without RoPE (granite.rope.scaling.finetuned false) is not supported for training";
    if (m.hparams.f_logit_scale == 0.0f) return "granite.logit_scale is 0";
    return "";
}

// llama_used lists every tensor build_forward's llama-family graph reads.
std::vector<const ggml_tensor *> llama_used(const llama_model & m) {
    std::vector<const ggml_tensor *> out = {m.tok_embd, m.output_norm, m.output};
    for (const auto & L : m.layers) {
        for (const ggml_tensor * t : {L.attn_norm, L.wq, L.wk, L.wv, L.wo, L.bq, L.bk, L.bv, L.bo, L.attn_q_norm,
                                      L.attn_k_norm, L.ffn_norm, L.ffn_gate, L.ffn_up, L.ffn_down, L.rope_freqs}) {
            if (t != nullptr) out.push_back(t);
        }
    }
    return out;
}

// check_model refuses what the training graph does not reproduce exactly.
std::string check_model(const llama_model & m) {
    if (!arch_supported(m.arch)) {
        return std::string("architecture ") + llm_arch_name(m.arch) +
               " is not supported for training (supported: llama, qwen2, qwen3, gemma2, gemma3, phi3, smollm3, granite)";
    }
    if (m.arch == LLM_ARCH_PHI3) return check_phi3(m);
    if (std::string why = check_granite(m); !why.empty()) return why;
    const auto & hp = m.hparams;
    if (is_gemma(m.arch)) {
        std::string why = check_gemma(m);
        if (!why.empty()) return why;
    }
    if (hp.n_expert > 0) return "mixture-of-experts models are not supported for training";
    if (hp.use_kq_norm) return "llama4-style KQ norm is not supported for training";
    if (hp.swa_type != LLAMA_SWA_TYPE_NONE && !is_gemma(m.arch)) return "sliding-window attention is not supported for training";
    if (hp.n_rot != hp.n_embd_head_k || hp.n_embd_head_k != hp.n_embd_head_v) {
        return "partial rotary or unequal K/V head sizes are not supported for training";
    }
    for (size_t il = 0; il < m.layers.size(); il++) {
        const auto & L = m.layers[il];
        if (L.wqkv || L.ffn_gate_inp || !L.wq || !L.wk || !L.wv || !L.wo || !L.ffn_up || !L.ffn_gate || !L.ffn_down) {
            return "layer " + std::to_string(il) + " has a tensor layout the training graph does not support";
        }
        // Llama-3.x's rope_freqs (llama3 RoPE scaling) is one fixed factor per
        // dimension pair, which the graph passes to RoPE as llama_decode does.
        // LongRoPE's long/short pair is chosen by the serving context's length,
        // which a trainer does not know, so it stays refused.
        if (L.rope_long || L.rope_short) {
            return "LongRoPE frequency factors (rope_factors_long/short) are not supported for training";
        }
        if (L.rope_freqs && (L.rope_freqs->type != GGML_TYPE_F32 || L.rope_freqs->ne[0] != hp.n_rot / 2)) {
            return "layer " + std::to_string(il) + " has a rope_freqs tensor that is not F32 of n_rot/2 factors";
        }
    }
    if (!m.output || !m.tok_embd || !m.output_norm) return "model has no token embedding, output norm or output matrix";
    if (!is_gemma(m.arch)) {  // check_gemma checked Gemma's own list
        if (std::string t = unused_tensor(m, llama_used(m)); !t.empty()) return "tensor " + t + " is not used by the training graph";
    }
    return "";
}

// target_list returns the base weights selected by the target bits.
std::vector<ggml_tensor *> target_list(const llama_model & m, uint32_t bits) {
    std::vector<ggml_tensor *> out;
    for (const auto & L : m.layers) {
        if (bits & FA_T_Q) out.push_back(L.wq);
        if (bits & FA_T_K) out.push_back(L.wk);
        if (bits & FA_T_V) out.push_back(L.wv);
        if (bits & FA_T_O) out.push_back(L.wo);
        if (bits & FA_T_GATE) out.push_back(L.ffn_gate);
        if (bits & FA_T_UP) out.push_back(L.ffn_up);
        if (bits & FA_T_DOWN) out.push_back(L.ffn_down);
        if (bits & FA_T_QKV) out.push_back(L.wqkv);
    }
    if (bits & FA_T_OUTPUT) out.push_back(m.output);
    // A bit whose tensor the family lacks: check_target_bits refused it
    // unless the request was "all".
    out.erase(std::remove(out.begin(), out.end(), nullptr), out.end());
    return out;
}

// frozen_matrices lists every matrix the forward multiplies by.
std::vector<ggml_tensor *> frozen_matrices(const llama_model & m) {
    std::vector<ggml_tensor *> out;
    for (const auto & L : m.layers) {
        for (ggml_tensor * t : {L.wq, L.wk, L.wv, L.wqkv, L.wo, L.ffn_gate, L.ffn_up, L.ffn_down}) {
            if (t != nullptr) out.push_back(t);  // a family has either wq/wk/wv or wqkv
        }
    }
    out.push_back(m.output);
    return out;
}

// to_f32 reads any tensor (any backend, any type) as floats.
std::vector<float> to_f32(const ggml_tensor * t) {
    const int64_t n = ggml_nelements(t);
    std::vector<uint8_t> raw(ggml_nbytes(t));
    ggml_backend_tensor_get(t, raw.data(), 0, raw.size());
    std::vector<float> out(n);
    if (t->type == GGML_TYPE_F32) {
        memcpy(out.data(), raw.data(), n * sizeof(float));
        return out;
    }
    const auto * tr = ggml_get_type_traits(t->type);
    if (tr->to_float == nullptr) {
        throw std::runtime_error(std::string("cannot convert tensor type ") + ggml_type_name(t->type) + " to F32");
    }
    tr->to_float(raw.data(), out.data(), n);
    return out;
}

std::string model_arch_name(const llama_model * m) {
    char buf[128];
    if (llama_model_meta_val_str(m, "general.architecture", buf, sizeof(buf)) < 0) {
        return "llama";
    }
    return buf;
}

// sync_path flushes a file or directory to stable storage (fsync).
static bool sync_path(const std::string & path, bool dir) {
    const int fd = open(path.c_str(), dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) return false;
    const bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

// write_gguf writes g to path through a temporary file that is synced before it
// is renamed into place, and syncs the directory after, so neither a crash nor a
// power loss leaves a half-written adapter or checkpoint under the final name.
void write_gguf(gguf_context * g, const std::string & path) {
    const std::string tmp = path + ".tmp";
    errno = 0;
    if (!gguf_write_to_file(g, tmp.c_str(), false)) {
        // gguf reports only failure; errno still says why (ENOSPC, EFBIG under
        // ulimit -f, EACCES), which is what the user needs to act on.
        const int e = errno;
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot write " + tmp + (e ? std::string(": ") + std::strerror(e) : std::string()));
    }
    if (!sync_path(tmp, false)) {
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot sync " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot rename " + tmp + " to " + path);
    }
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    if (!sync_path(dir, true)) {
        throw std::runtime_error("cannot sync directory " + dir);
    }
}

// host_copy returns a host tensor named name holding t's values (for gguf writing).
ggml_tensor * host_copy(ggml_context * ctx, const ggml_tensor * t, const std::string & name) {
    ggml_tensor * h = ggml_dup_tensor(ctx, t);
    ggml_set_name(h, name.c_str());
    ggml_backend_tensor_get(t, h->data, 0, ggml_nbytes(t));
    return h;
}

// check_phi3 refuses what phi3_layer does not reproduce. llama.cpp's
// phi3 loader creates only the tensors named below (a file with any other
// fails to load), and each must be one the graph uses: a tensor it would
// ignore is refused by name.
std::string check_phi3(const llama_model & m) {
    const auto & hp = m.hparams;
    if (hp.n_expert > 0) return "mixture-of-experts models are not supported for training";
    // llama.cpp's phi3 loader turns a sliding window off ("Phi SWA is
    // currently disabled"), so llama_decode attends to the whole context
    // and so does the graph; a window still set here is another model.
    if (hp.swa_type != LLAMA_SWA_TYPE_NONE) return "sliding-window attention is not supported for training";
    if (hp.n_embd_head_k != hp.n_embd_head_v) return "unequal K/V head sizes are not supported for training";
    if (hp.n_rot <= 0 || hp.n_rot > hp.n_embd_head_k || hp.n_rot % 2 != 0) {
        return "phi3: rope.dimension_count " + std::to_string(hp.n_rot) + " is not an even number of at most the head size " +
               std::to_string(hp.n_embd_head_k);
    }
    if (!m.output || !m.tok_embd || !m.output_norm) return "model has no token embedding, output norm or output matrix";
    std::vector<std::string> used = {"token_embd.weight", "output_norm.weight", "output.weight", "rope_factors_long.weight",
                                     "rope_factors_short.weight"};
    for (size_t il = 0; il < m.layers.size(); il++) {
        const auto & L = m.layers[il];
        const std::string blk = "blk." + std::to_string(il) + ".";
        // Without attn_qkv llama.cpp's graph takes separate q/k/v with
        // biases, which this loader never creates.
        if (!L.wqkv || !L.wo || !L.ffn_up || !L.ffn_down || !L.attn_norm || !L.ffn_norm) {
            return "phi3 layer " + std::to_string(il) + " lacks one of " + blk + "attn_qkv/attn_output/ffn_up/ffn_down/attn_norm/ffn_norm";
        }
        if (L.ffn_up->ne[1] != 2 * L.ffn_down->ne[0]) {
            return blk + "ffn_up.weight has " + std::to_string(L.ffn_up->ne[1]) + " rows, want 2·n_ff = " +
                   std::to_string(2 * L.ffn_down->ne[0]) + " (gate and up fused)";
        }
        for (const ggml_tensor * f : {L.rope_long, L.rope_short}) {
            if (f && (f->type != GGML_TYPE_F32 || f->ne[0] != hp.n_rot / 2)) {
                return std::string(ggml_get_name(f)) + " is not F32 of rope.dimension_count/2 factors";
            }
        }
        for (const char * k : {"attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"}) {
            used.push_back(blk + k + ".weight");
        }
    }
    for (const auto & kv : m.tensors_by_name) {
        if (std::find(used.begin(), used.end(), kv.first) == used.end()) {
            return "tensor " + kv.first + " is not used by the phi3 training graph";
        }
    }
    return "";
}

// check_target_bits refuses a LoRA target the model's family does not have
// (phi3 fuses q, k and v into attn_qkv and gate into ffn_up; llama has no
// attn_qkv), saying which it has. The bits of "all" mean every projection
// the model has, so they are never refused.
void check_target_bits(const llama_model & m, uint32_t bits) {
    constexpr uint32_t all = FA_T_Q | FA_T_K | FA_T_V | FA_T_O | FA_T_GATE | FA_T_UP | FA_T_DOWN | FA_T_QKV;  // Go's TargetsAll
    if ((bits & all) == all || m.layers.empty()) return;
    const auto & L = m.layers[0];
    const struct {
        uint32_t            bit;
        const char *        name;
        const ggml_tensor * t;
    } kinds[] = {{FA_T_Q, "q", L.wq},       {FA_T_K, "k", L.wk},       {FA_T_V, "v", L.wv},
                 {FA_T_QKV, "qkv", L.wqkv}, {FA_T_O, "o", L.wo},       {FA_T_GATE, "gate", L.ffn_gate},
                 {FA_T_UP, "up", L.ffn_up}, {FA_T_DOWN, "down", L.ffn_down}};
    std::string has, missing;
    for (const auto & k : kinds) {
        if (k.t != nullptr) {
            has += std::string(has.empty() ? "" : ",") + k.name;
        } else if ((bits & k.bit) && missing.empty()) {
            missing = k.name;
        }
    }
    if (!missing.empty()) {
        throw std::runtime_error("LoRA target " + missing + ": a " + llm_arch_name(m.arch) +
                                 " model has no such projection (its targets: " + has + ", output, or all)");
    }
}

// set_serving_context makes get_rope_factors pick the table llama.cpp picks
// when serving at n_ctx_serve tokens per sequence (llama_context rounds n_ctx
// and n_ctx_seq up to 256; nothing else in the graph reads n_ctx_seq), and
// records which LongRoPE table that is.
void set_serving_context(fa_trainer * tr, uint32_t n_ctx_serve) {
    if (n_ctx_serve > 0) tr->cparams.n_ctx_seq = GGML_PAD(n_ctx_serve, 256);
    const llama_model & m = *tr->model;
    if (m.layers.empty()) return;
    const ggml_tensor * f = m.get_rope_factors(tr->cparams, 0);
    if (f != nullptr && f == m.layers[0].rope_long) tr->rope_factors = "long";
    if (f != nullptr && f == m.layers[0].rope_short) tr->rope_factors = "short";
}

// attn_nocache is llama.cpp's non-flash attention (build_attn_mha) without a
// cache: Q [d, h, n], K and V [d, hkv, n] to [d·h, n].
ggml_tensor * attn_nocache(ggml_context * ctx, ggml_tensor * Q, ggml_tensor * K, ggml_tensor * V, ggml_tensor * mask,
                           float kq_scale) {
    const int64_t d = Q->ne[0], n_head = Q->ne[1], n = Q->ne[2];
    ggml_tensor * q = ggml_permute(ctx, Q, 0, 2, 1, 3);
    ggml_tensor * k = ggml_permute(ctx, K, 0, 2, 1, 3);
    ggml_tensor * v = ggml_cont(ctx, ggml_transpose(ctx, ggml_permute(ctx, V, 0, 2, 1, 3)));
    ggml_tensor * kq = ggml_soft_max_ext(ctx, ggml_mul_mat(ctx, k, q), mask, kq_scale, 0.0f);
    ggml_tensor * kqv = ggml_mul_mat(ctx, v, kq);
    return ggml_cont_2d(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3), d * n_head, n);
}

// phi3_qkv is llm_build_phi3's attention input: one (LoRA) product with the
// fused attn_qkv, as build_lora_mm(wqkv), split by views into Q, K and V
// ([d, heads, n]; rows q, then k, then v).
void phi3_qkv(const fa_trainer * tr, ggml_context * ctx, const llama_layer & L, ggml_tensor * x, int64_t d, int64_t n_head,
              int64_t n_head_kv, ggml_tensor ** Q, ggml_tensor ** K, ggml_tensor ** V) {
    ggml_tensor * qkv = tr->mm(ctx, L.wqkv, x);
    const int64_t n = qkv->ne[1];
    const size_t  f = sizeof(float);
    *Q = ggml_view_3d(ctx, qkv, d, n_head, n, d * f, qkv->nb[1], 0);
    *K = ggml_view_3d(ctx, qkv, d, n_head_kv, n, d * f, qkv->nb[1], d * n_head * f);
    *V = ggml_view_3d(ctx, qkv, d, n_head_kv, n, d * f, qkv->nb[1], d * (n_head + n_head_kv) * f);
    // V's gradient arrives transposed and permuted, and the VIEW backward
    // (ACC) needs contiguous rows: a copy and an identity reshape, whose
    // backward makes it contiguous, fix that. The copy is exact, so
    // attention reads the same values.
    *V = ggml_cont(ctx, *V);
    *V = ggml_reshape_3d(ctx, *V, d, n_head_kv, n);
}

// phi3_ffn is the fused gate-up SwiGLU and the down projection: ffn_up's
// 2·n_ff rows are the gate, then up, as llama_decode's ggml_swiglu splits
// them. ggml's autodiff has no backward for the fused GLU, so the two halves
// go to swiglu_split as views: the same kernel on the same rows, the same
// bits.
ggml_tensor * phi3_ffn(const fa_trainer * tr, ggml_context * ctx, const llama_layer & L, ggml_tensor * x) {
    ggml_tensor * gu = tr->mm(ctx, L.ffn_up, x);
    const int64_t n_ff = gu->ne[0] / 2;
    ggml_tensor * gate = ggml_view_2d(ctx, gu, n_ff, gu->ne[1], gu->nb[1], 0);
    ggml_tensor * up = ggml_view_2d(ctx, gu, n_ff, gu->ne[1], gu->nb[1], n_ff * sizeof(float));
    return tr->mm(ctx, L.ffn_down, ggml_swiglu_split(ctx, gate, up));
}

// phi3_layer is one block of llm_build_phi3 without a cache: fused QKV and
// gate-up, NEOX RoPE on n_rot of each head's dimensions with the LongRoPE
// table of the serving context, Q scaled by 1/sqrt(d) before attention
// (softmax scale 1, where llama scales inside the softmax: the roundings
// differ, so phi3's order is kept). The embedding and the head are
// build_forward's: phi3's are llama's.
ggml_tensor * phi3_layer(fa_trainer * tr, ggml_context * ctx, int il, ggml_tensor * x, ggml_tensor * pos, ggml_tensor * mask) {
    const llama_model & m = *tr->model;
    const auto & hp = m.hparams;
    const auto & cp = tr->cparams;
    const auto & L = m.layers[il];
    const int64_t d = hp.n_embd_head_k;
    const float eps = hp.f_norm_rms_eps;
    ggml_tensor * cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), L.attn_norm);
    ggml_tensor *Q, *K, *V;
    phi3_qkv(tr, ctx, L, cur, d, hp.n_head(il), hp.n_head_kv(il), &Q, &K, &V);
    ggml_tensor * rf = m.get_rope_factors(cp, il);
    Q = ggml_rope_ext(ctx, Q, pos, rf, hp.n_rot, hp.rope_type, cp.n_ctx_orig_yarn, cp.rope_freq_base, cp.rope_freq_scale,
                      cp.yarn_ext_factor, cp.yarn_attn_factor, cp.yarn_beta_fast, cp.yarn_beta_slow);
    K = ggml_rope_ext(ctx, K, pos, rf, hp.n_rot, hp.rope_type, cp.n_ctx_orig_yarn, cp.rope_freq_base, cp.rope_freq_scale,
                      cp.yarn_ext_factor, cp.yarn_attn_factor, cp.yarn_beta_fast, cp.yarn_beta_slow);
    Q = ggml_scale(ctx, Q, 1.0f / sqrtf((float) d));
    // An identity reshape: the forward is unchanged (same layout), but
    // its backward makes the permuted gradient contiguous, which
    // SCALE's backward requires.
    Q = ggml_reshape_3d(ctx, Q, Q->ne[0], Q->ne[1], Q->ne[2]);
    cur = tr->mm(ctx, L.wo, attn_nocache(ctx, Q, K, V, mask, 1.0f));
    ggml_tensor * ffn_inp = ggml_add(ctx, cur, x);
    cur = ggml_mul(ctx, ggml_rms_norm(ctx, ffn_inp, eps), L.ffn_norm);
    return ggml_add(ctx, ffn_inp, phi3_ffn(tr, ctx, L, cur));
}

void init(fa_trainer * tr, llama_model * model, llama_context * ctx_ref, const fa_train_params * p, const char * resume) {
    tr->model = model;
    tr->p = *p;
    std::string why = check_model(*model);
    if (!why.empty()) throw std::runtime_error(why);
    if (ctx_ref == nullptr) throw std::runtime_error("a reference context is required");
    tr->cparams = ctx_ref->get_cparams();
    set_serving_context(tr, p->n_ctx_serve);

    if (p->lora_dropout < 0.0f || p->lora_dropout >= 1.0f) throw std::runtime_error("LoRA dropout must be in [0, 1)");
    if (p->full && p->lora_dropout > 0.0f) throw std::runtime_error("LoRA dropout applies to LoRA training only");
    if (p->full && p->checkpoint) throw std::runtime_error("gradient checkpointing applies to LoRA training only");
    if (!p->full) {
        if (p->rank <= 0) throw std::runtime_error("LoRA rank must be positive");
        if (p->targets == 0) throw std::runtime_error("no LoRA targets selected");
        tr->scale = p->alpha != 0.0f ? p->alpha / (float) p->rank : 1.0f;
    }

    // Backends: the GPU that holds the weights (if any) first, then the CPU.
    for (ggml_tensor * t : frozen_matrices(*model)) {
        if (t->buffer && !ggml_backend_buffer_is_host(t->buffer) && tr->backend_dev == nullptr) {
            ggml_backend_dev_t dev = ggml_backend_buft_get_device(ggml_backend_buffer_get_type(t->buffer));
            if (dev != nullptr) {
                tr->backend_dev = ggml_backend_dev_init(dev, nullptr);
            }
        }
    }
    tr->backend_cpu = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    if (tr->backend_cpu == nullptr) throw std::runtime_error("cannot initialise the CPU backend");
    ggml_backend_cpu_set_n_threads(tr->backend_cpu, p->n_threads > 0 ? p->n_threads : 1);
    std::vector<ggml_backend_t> backends;
    if (tr->backend_dev) backends.push_back(tr->backend_dev);
    backends.push_back(tr->backend_cpu);
    ggml_backend_buffer_type_t buft_static = ggml_backend_get_default_buffer_type(backends[0]);

    const int n_layer = (int) model->layers.size();
    tr->graph_size = 8192 + n_layer * 4096;
    tr->sched = ggml_backend_sched_new(backends.data(), nullptr, (int) backends.size(), tr->graph_size, false, true);
    if (tr->sched == nullptr) throw std::runtime_error("cannot create the scheduler");

    // Static tensors: trainable parameters, moments, weight copies, loss gradient.
    if (!p->full) check_target_bits(*model, p->targets);
    std::vector<ggml_tensor *> targets = p->full ? std::vector<ggml_tensor *>{} : target_list(*model, p->targets);
    std::vector<ggml_tensor *> to_copy;
    for (ggml_tensor * t : frozen_matrices(*model)) {
        bool is_head = t == model->output;
        // CPU has no F16/BF16 OUT_PROD (backward through the weight), so those
        // weights are always converted; quantized ones only on request.
        bool need = t->type == GGML_TYPE_F16 || t->type == GGML_TYPE_BF16 ||
                    (t->type != GGML_TYPE_F32 && (p->f32_base || (is_head && p->f32_head)));
        if (p->full) need = false;
        bool dup = false;
        for (ggml_tensor * c : to_copy) dup = dup || c == t;
        if (need && !dup) to_copy.push_back(t);
    }
    std::vector<ggml_tensor *> full_params;
    if (p->full) {
        for (auto & kv : model->tensors_by_name) {
            ggml_tensor * t = kv.second;
            if (t->type != GGML_TYPE_F32 || kv.first.find("rope_freqs") != std::string::npos) continue;
            bool dup = false;
            for (ggml_tensor * q : full_params) dup = dup || q == t;
            if (!dup) full_params.push_back(t);
        }
        for (ggml_tensor * t : frozen_matrices(*model)) {
            if (t->type != GGML_TYPE_F32) {
                throw std::runtime_error(std::string("full training needs an all-F32 model; ") + ggml_get_name(t) +
                                         " is " + ggml_type_name(t->type));
            }
        }
        if (full_params.empty()) throw std::runtime_error("the model has no F32 tensors to train");
    }
    size_t n_static = 5 * (targets.size() * 2 + full_params.size()) + to_copy.size() + frozen_matrices(*model).size() + 8;
    ggml_init_params ip = {n_static * ggml_tensor_overhead(), nullptr, true};
    tr->ctx_static = ggml_init(ip);
    for (ggml_tensor * t : to_copy) {
        ggml_tensor * c = ggml_new_tensor(tr->ctx_static, GGML_TYPE_F32, GGML_MAX_DIMS, t->ne);
        ggml_format_name(c, "%s.f32", ggml_get_name(t));
        tr->copies[t] = c;
        tr->copy_list.push_back({t, c});
    }
    if (!p->full && (p->backward == 1 || p->backward == 2)) {
        for (ggml_tensor * t : frozen_matrices(*model)) {
            ggml_tensor * used = tr->w(t);
            if (tr->transposed.count(used)) continue;
            ggml_type tt = (p->backward == 2 && t->ne[1] % ggml_blck_size(GGML_TYPE_Q8_0) == 0) ? GGML_TYPE_Q8_0 : GGML_TYPE_F32;
            ggml_tensor * wt = ggml_new_tensor_2d(tr->ctx_static, tt, t->ne[1], t->ne[0]);
            ggml_format_name(wt, "%s.T", ggml_get_name(t));
            tr->transposed[used] = wt;
            tr->transpose_list.push_back({t, wt});
        }
    }
    auto add_param = [&](ggml_tensor * t, const std::string & name) {
        param pr;
        pr.name = name;
        pr.t = t;
        ggml_set_param(t);
        if (p->optimizer == 0) {
            pr.m = ggml_new_tensor(tr->ctx_static, GGML_TYPE_F32, GGML_MAX_DIMS, t->ne);
            pr.v = ggml_new_tensor(tr->ctx_static, GGML_TYPE_F32, GGML_MAX_DIMS, t->ne);
            ggml_format_name(pr.m, "%s.m", name.c_str());
            ggml_format_name(pr.v, "%s.v", name.c_str());
        }
        pr.acc = ggml_new_tensor(tr->ctx_static, GGML_TYPE_F32, GGML_MAX_DIMS, t->ne);
        ggml_format_name(pr.acc, "%s.acc", name.c_str());
        tr->params.push_back(pr);
    };
    for (ggml_tensor * t : targets) {
        lora_pair lp;
        lp.a = ggml_new_tensor_2d(tr->ctx_static, GGML_TYPE_F32, t->ne[0], p->rank);
        lp.b = ggml_new_tensor_2d(tr->ctx_static, GGML_TYPE_F32, p->rank, t->ne[1]);
        std::string base = ggml_get_name(t);
        ggml_set_name(lp.a, (base + ".lora_a").c_str());
        ggml_set_name(lp.b, (base + ".lora_b").c_str());
        tr->lora[t] = lp;
        add_param(lp.a, base + ".lora_a");
        add_param(lp.b, base + ".lora_b");
    }
    for (ggml_tensor * t : full_params) {
        add_param(t, ggml_get_name(t));
    }
    tr->loss_grad = ggml_new_tensor_1d(tr->ctx_static, GGML_TYPE_F32, 1);
    ggml_set_name(tr->loss_grad, "loss_grad");
    tr->buf_static = ggml_backend_alloc_ctx_tensors_from_buft(tr->ctx_static, buft_static);
    if (tr->buf_static == nullptr) throw std::runtime_error("cannot allocate the trainer's tensors");
    ggml_backend_buffer_clear(tr->buf_static, 0);  // B = 0, moments = 0
    const float one = 1.0f;
    ggml_backend_tensor_set(tr->loss_grad, &one, 0, sizeof(one));

    ggml_init_params hp_ip = {2 * ggml_tensor_overhead(), nullptr, true};
    tr->ctx_host = ggml_init(hp_ip);
    // AdamW takes [lr, beta1, beta2, eps, wd, 1/(1-beta1^t), 1/(1-beta2^t)], SGD [lr, wd].
    tr->opt_params = ggml_new_tensor_1d(tr->ctx_host, GGML_TYPE_F32, p->optimizer == 0 ? 7 : 2);
    ggml_set_name(tr->opt_params, "opt_params");
    tr->buf_host = ggml_backend_alloc_ctx_tensors_from_buft(tr->ctx_host, ggml_backend_cpu_buffer_type());
    if (tr->buf_host == nullptr) throw std::runtime_error("cannot allocate the optimizer parameters");

    for (auto & c : tr->copy_list) {
        std::vector<float> f = to_f32(c.first);
        ggml_backend_tensor_set(c.second, f.data(), 0, f.size() * sizeof(float));
    }
    for (auto & c : tr->transpose_list) {
        const int64_t n_in = c.first->ne[0], n_out = c.first->ne[1];
        std::vector<float> f = to_f32(c.first), ft((size_t) n_in * n_out);
        for (int64_t o = 0; o < n_out; o++) {
            for (int64_t i = 0; i < n_in; i++) ft[(size_t) i * n_out + o] = f[(size_t) o * n_in + i];
        }
        if (c.second->type == GGML_TYPE_F32) {
            ggml_backend_tensor_set(c.second, ft.data(), 0, ft.size() * sizeof(float));
        } else {
            std::vector<uint8_t> q(ggml_nbytes(c.second));
            ggml_quantize_chunk(c.second->type, ft.data(), q.data(), 0, n_in, n_out, nullptr);
            ggml_backend_tensor_set(c.second, q.data(), 0, q.size());
        }
    }

    // A ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) (PEFT's default), B = 0: training starts
    // exactly at the base model.
    std::mt19937 rng(p->seed);
    for (auto & kv : tr->lora) {
        ggml_tensor * a = kv.second.a;
        const float bound = 1.0f / std::sqrt((float) a->ne[0]);
        std::uniform_real_distribution<float> u(-bound, bound);
        std::vector<float> vals(ggml_nelements(a));
        for (auto & x : vals) x = u(rng);
        ggml_backend_tensor_set(a, vals.data(), 0, vals.size() * sizeof(float));
    }

    if (resume != nullptr && resume[0] != '\0') {
        if (p->full) throw std::runtime_error("resume from an adapter applies to LoRA training only");
        ggml_context * rctx = nullptr;
        gguf_init_params gp = {false, &rctx};
        gguf_context * g = gguf_init_from_file(resume, gp);
        if (g == nullptr) throw std::runtime_error(std::string("cannot read adapter ") + resume);
        std::string problem;
        for (auto & pr : tr->params) {
            ggml_tensor * src = ggml_get_tensor(rctx, pr.name.c_str());
            if (src == nullptr) {
                problem = "adapter has no tensor " + pr.name;
                break;
            }
            if (!ggml_are_same_shape(src, pr.t) || src->type != GGML_TYPE_F32) {
                problem = "adapter tensor " + pr.name + " has another shape or type (rank or targets differ)";
                break;
            }
            ggml_backend_tensor_set(pr.t, src->data, 0, ggml_nbytes(src));
        }
        gguf_free(g);
        ggml_free(rctx);
        if (!problem.empty()) throw std::runtime_error(problem);
    }
}

struct batch_in {
    std::vector<int32_t> pos, rows, labels;
    std::vector<float>   mask;
    std::vector<float>   weights;  // per scored row, when the loss is weighted
    // The sliding-window mask, made by set_swa_mask on first use and reused
    // by every graph of the step (a checkpointed step has two per block).
    mutable std::vector<float> mask_swa;
};

// ---- Gemma-2 and Gemma-3 (llama.cpp's gemma2-iswa.cpp and gemma3.cpp) ----

// stop_gradient returns x's values as a tensor autodiff treats as a constant.
// ggml has no such op, but ggml_build_backward_expand skips I32 nodes: a view
// of x's bytes typed I32, viewed back as F32, holds x's values and carries no
// gradient. Both are views, so no data is copied or converted.
ggml_tensor * stop_gradient(ggml_context * ctx, ggml_tensor * x) {
    GGML_ASSERT(ggml_is_contiguous(x) && x->type == GGML_TYPE_F32);
    ggml_tensor * bits = ggml_view_1d(ctx, x, ggml_nelements(x), 0);
    bits->type = GGML_TYPE_I32;  // same element size: strides and bytes unchanged
    ggml_tensor * v = ggml_view_4d(ctx, bits, x->ne[0], x->ne[1], x->ne[2], x->ne[3], x->nb[1], x->nb[2], x->nb[3], 0);
    v->type = GGML_TYPE_F32;
    return v;
}

// value_of_grad_of is exact's value with smooth's gradient: smooth +
// stop(exact - smooth). smooth approximates exact within a factor of 2 (the
// F16 table's rounding and tanhf's are far finer, and a table value of 0
// subtracts exactly), so the difference is exact in float (Sterbenz) and so
// is the sum: the forward keeps exact's bits, which are llama_decode's (the
// tests check this bit for bit). With tr->smooth_forward, smooth itself.
ggml_tensor * value_of_grad_of(const fa_trainer * tr, ggml_context * ctx, ggml_tensor * exact, ggml_tensor * smooth) {
    if (tr->smooth_forward) return smooth;
    return ggml_add(ctx, smooth, stop_gradient(ctx, ggml_sub(ctx, exact, smooth)));
}

// sigmoid_d is σ(z) = exp(-softplus(-z)) from ops autodiff differentiates
// (ggml has no SIGMOID backward); finite for every z, unlike 1/(1+exp(-z))'s.
ggml_tensor * sigmoid_d(ggml_context * ctx, ggml_tensor * z) {
    return ggml_exp(ctx, ggml_neg(ctx, ggml_softplus(ctx, ggml_neg(ctx, z))));
}

// tanh_exact is ggml_tanh (llama_decode's soft-capping op, tanhf) with the
// gradient of tanh(z) = 2σ(2z) - 1: ggml has no TANH backward.
ggml_tensor * tanh_exact(const fa_trainer * tr, ggml_context * ctx, ggml_tensor * z) {
    ggml_tensor * smooth = ggml_scale_bias(ctx, sigmoid_d(ctx, ggml_scale(ctx, z, 2.0f)), 2.0f, -1.0f);
    return value_of_grad_of(tr, ctx, ggml_tanh(ctx, z), smooth);
}

// softcap is cap·tanh(x/cap), as llama.cpp writes Gemma's soft-capping.
ggml_tensor * softcap(const fa_trainer * tr, ggml_context * ctx, ggml_tensor * x, float cap) {
    return ggml_scale(ctx, tanh_exact(tr, ctx, ggml_scale(ctx, x, 1.0f / cap)), cap);
}

// geglu_exact is llama_decode's GEGLU, gelu_tanh(gate)·up, with the gradient
// of gelu_tanh(x) = x·σ(2u), u = √(2/π)(x + 0.044715x³) (ggml has no GELU or
// GLU-GEGLU backward). The forward keeps ggml_geglu_split's bits: on the CPU
// that op reads GELU from an F16 table (x rounded to F16, the result rounded
// to F16), up to ~1e-3 relative from the smooth function the gradient
// follows.
ggml_tensor * geglu_exact(const fa_trainer * tr, ggml_context * ctx, ggml_tensor * gate, ggml_tensor * up) {
    const float sqrt_2_over_pi = 0.79788456080286535587989211986876f;
    ggml_tensor * inner = ggml_scale_bias(ctx, ggml_sqr(ctx, gate), 0.044715f, 1.0f);
    ggml_tensor * two_u = ggml_scale(ctx, ggml_mul(ctx, gate, inner), 2.0f * sqrt_2_over_pi);
    ggml_tensor * smooth = ggml_mul(ctx, ggml_mul(ctx, gate, sigmoid_d(ctx, two_u)), up);
    return value_of_grad_of(tr, ctx, ggml_geglu_split(ctx, gate, up), smooth);
}

// rms_norm_w is llama.cpp's build_norm(LLM_NORM_RMS): rms_norm(x)·w.
ggml_tensor * rms_norm_w(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, float eps) {
    return ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), w);
}

// gemma_has_swa says whether the model has sliding-window layers (gemma2
// always; gemma3 when its GGUF has attention.sliding_window).
bool gemma_has_swa(const llama_model & m) { return is_gemma(m.arch) && m.hparams.swa_type != LLAMA_SWA_TYPE_NONE; }

// gemma_rope returns layer il's RoPE base and scale as llama_decode's graph
// uses them: gemma3 with sliding windows takes its SWA layers' fixed 10000
// (llama_model::get_rope_freq_base), gemma2 and the rest the context's.
std::pair<float, float> gemma_rope(const fa_trainer * tr, int il) {
    const llama_model & m = *tr->model;
    if (m.arch == LLM_ARCH_GEMMA3 && gemma_has_swa(m)) {
        return {m.get_rope_freq_base(tr->cparams, il), m.get_rope_freq_scale(tr->cparams, il)};
    }
    return {tr->cparams.rope_freq_base, tr->cparams.rope_freq_scale};
}

// gemma_attention is one Gemma attention block from the normed input to the
// output projection: RoPE at the layer's base, Q scaled by
// f_attention_scale (llama.cpp: 1/√head_dim, or 1/√(n_embd/n_head) for the
// 27B sizes) before Q·K, gemma2's soft-capping of the attention logits, and
// the layer's mask (sliding-window or causal).
ggml_tensor * gemma_attention(fa_trainer * tr, ggml_context * ctx, int il, ggml_tensor * cur, ggml_tensor * pos,
                              ggml_tensor * mask, int n) {
    const llama_model & m = *tr->model;
    const auto & hp = m.hparams;
    const auto & cp = tr->cparams;
    const auto & L = m.layers[il];
    const int64_t d = hp.n_embd_head_k, n_head = hp.n_head(il), n_head_kv = hp.n_head_kv(il);
    const float eps = hp.f_norm_rms_eps;
    ggml_tensor * Q = ggml_reshape_3d(ctx, tr->mm(ctx, L.wq, cur), d, n_head, n);
    ggml_tensor * K = ggml_reshape_3d(ctx, tr->mm(ctx, L.wk, cur), d, n_head_kv, n);
    ggml_tensor * V = ggml_reshape_3d(ctx, tr->mm(ctx, L.wv, cur), d, n_head_kv, n);
    if (L.attn_q_norm) Q = rms_norm_w(ctx, Q, L.attn_q_norm, eps);
    if (L.attn_k_norm) K = rms_norm_w(ctx, K, L.attn_k_norm, eps);
    const auto [base, scale] = gemma_rope(tr, il);
    Q = ggml_rope_ext(ctx, Q, pos, nullptr, hp.n_rot, hp.rope_type, cp.n_ctx_orig_yarn, base, scale, cp.yarn_ext_factor,
                      cp.yarn_attn_factor, cp.yarn_beta_fast, cp.yarn_beta_slow);
    K = ggml_rope_ext(ctx, K, pos, nullptr, hp.n_rot, hp.rope_type, cp.n_ctx_orig_yarn, base, scale, cp.yarn_ext_factor,
                      cp.yarn_attn_factor, cp.yarn_beta_fast, cp.yarn_beta_slow);
    // The reshape (to the same shape) is for the backward: the gradient
    // arriving through the permute below is not contiguous, which SCALE's
    // backward refuses; RESHAPE's makes it contiguous first.
    Q = ggml_reshape_3d(ctx, ggml_scale(ctx, Q, hp.f_attention_scale), d, n_head, n);
    ggml_tensor * q = ggml_permute(ctx, Q, 0, 2, 1, 3);
    ggml_tensor * k = ggml_permute(ctx, K, 0, 2, 1, 3);
    ggml_tensor * v = ggml_cont(ctx, ggml_transpose(ctx, ggml_permute(ctx, V, 0, 2, 1, 3)));
    ggml_tensor * kq = ggml_mul_mat(ctx, k, q);
    if (hp.attn_soft_cap) kq = softcap(tr, ctx, kq, hp.f_attn_logit_softcapping);
    kq = ggml_soft_max_ext(ctx, kq, mask, 1.0f, 0.0f);
    ggml_tensor * kqv = ggml_mul_mat(ctx, v, kq);
    cur = ggml_cont_2d(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3), d * n_head, n);
    return tr->mm(ctx, L.wo, cur);
}

// build_forward_gemma is build_forward for gemma2 and gemma3: the embedding
// scaled by √n_embd, post-attention and post-FFN norms, GEGLU, and the final
// logits soft-capped (gemma2 always, gemma3 when its GGUF sets a cap).
// Segments for gradient checkpointing (l0, l1, x_in, head) as build_forward's;
// a segment gets each mask only if one of its blocks reads it.
ggml_tensor * build_forward_gemma(fa_trainer * tr, ggml_context * ctx, int n, int n_scored, ggml_tensor ** inp_tok,
                                  ggml_tensor ** inp_pos, ggml_tensor ** inp_mask, ggml_tensor ** inp_rows, int l0, int l1,
                                  ggml_tensor * x_in, bool head) {
    const llama_model & m = *tr->model;
    const auto & hp = m.hparams;
    const float eps = hp.f_norm_rms_eps;
    if (l1 < 0) l1 = (int) m.layers.size();
    bool swa = false, global = false;
    for (int il = l0; il < l1; il++) {
        const bool is_swa = gemma_has_swa(m) && hp.is_swa(il);
        swa = swa || is_swa;
        global = global || !is_swa;
    }
    *inp_tok = x_in == nullptr ? ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n) : nullptr;
    *inp_pos = l0 < l1 ? ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n) : nullptr;
    *inp_mask = global ? ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, n) : nullptr;
    *inp_rows = head ? ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_scored) : nullptr;
    tr->inp_mask_swa = swa ? ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, n) : nullptr;
    for (ggml_tensor * t : {*inp_tok, *inp_pos, *inp_mask, *inp_rows, tr->inp_mask_swa}) {
        if (t != nullptr) ggml_set_input(t);
    }

    ggml_tensor * x = x_in;
    if (x == nullptr) x = ggml_scale(ctx, ggml_get_rows(ctx, tr->w(m.tok_embd), *inp_tok), sqrtf((float) hp.n_embd));
    for (int il = l0; il < l1; il++) {
        const auto & L = m.layers[il];
        ggml_tensor * mask = gemma_has_swa(m) && hp.is_swa(il) ? tr->inp_mask_swa : *inp_mask;
        ggml_tensor * cur = gemma_attention(tr, ctx, (int) il, rms_norm_w(ctx, x, L.attn_norm, eps), *inp_pos, mask, n);
        cur = rms_norm_w(ctx, cur, L.attn_post_norm, eps);
        ggml_tensor * sa_out = ggml_add(ctx, cur, x);
        cur = rms_norm_w(ctx, sa_out, L.ffn_norm, eps);
        ggml_tensor * up = tr->mm(ctx, L.ffn_up, cur);
        ggml_tensor * gate = tr->mm(ctx, L.ffn_gate, cur);
        cur = tr->mm(ctx, L.ffn_down, geglu_exact(tr, ctx, gate, up));
        cur = rms_norm_w(ctx, cur, L.ffn_post_norm, eps);
        x = ggml_add(ctx, cur, sa_out);
    }
    if (!head) return x;
    ggml_tensor * cur = ggml_get_rows(ctx, rms_norm_w(ctx, x, m.output_norm, eps), *inp_rows);
    cur = tr->mm(ctx, m.output, cur);
    if (m.arch == LLM_ARCH_GEMMA2 || hp.f_final_logit_softcapping != 0.0f) {
        cur = softcap(tr, ctx, cur, hp.f_final_logit_softcapping);
    }
    return cur;  // [n_vocab, n_scored]
}

// set_swa_mask fills the sliding-window mask of the graph last built, if it
// has one: the causal mask of in, and also masked where llama.cpp's
// is_masked_swa masks (a key n_swa or more positions behind the query, in
// its own sequence).
void set_swa_mask(const fa_trainer * tr, const batch_in & in, int n) {
    if (tr->inp_mask_swa == nullptr) return;
    std::vector<float> & mask = in.mask_swa;
    if (mask.empty()) {
        const auto & hp = tr->model->hparams;
        mask = in.mask;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                if (llama_hparams::is_masked_swa(hp.n_swa, hp.swa_type, in.pos[j], in.pos[i])) mask[(size_t) i * n + j] = -INFINITY;
            }
        }
    }
    ggml_backend_tensor_set(tr->inp_mask_swa, mask.data(), 0, mask.size() * sizeof(float));
}

// build_forward builds the forward over n tokens: logits of the n_scored rows.
// A segment of it, for gradient checkpointing, is blocks [l0, l1) only: x_in
// (the hidden state entering block l0) replaces the token embedding when set,
// and without head the hidden state after block l1-1 is returned instead of
// logits. Inputs a segment does not use are left nullptr.
ggml_tensor * build_forward(fa_trainer * tr, ggml_context * ctx, int n, int n_scored,
                            ggml_tensor ** inp_tok, ggml_tensor ** inp_pos, ggml_tensor ** inp_mask,
                            ggml_tensor ** inp_rows, int l0 = 0, int l1 = -1, ggml_tensor * x_in = nullptr,
                            bool head = true) {
    if (is_gemma(tr->model->arch)) {
        return build_forward_gemma(tr, ctx, n, n_scored, inp_tok, inp_pos, inp_mask, inp_rows, l0, l1, x_in, head);
    }
    const llama_model & m = *tr->model;
    const auto & hp = m.hparams;
    const auto & cp = tr->cparams;
    const int64_t d = hp.n_embd_head_k;
    const float kq_scale = hp.f_attention_scale == 0.0f ? 1.0f / std::sqrt((float) d) : hp.f_attention_scale;
    const float eps = hp.f_norm_rms_eps;

    const int n_layer = (int) m.layers.size();
    if (l1 < 0) l1 = n_layer;
    *inp_tok = x_in == nullptr ? ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n) : nullptr;
    *inp_pos = any_rope(m, l0, l1) ? ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n) : nullptr;
    *inp_mask = l0 < l1 ? ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, n) : nullptr;
    *inp_rows = head ? ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_scored) : nullptr;
    for (ggml_tensor * t : {*inp_tok, *inp_pos, *inp_mask, *inp_rows}) {
        if (t != nullptr) ggml_set_input(t);
    }

    ggml_tensor * x = x_in != nullptr ? x_in : ggml_get_rows(ctx, tr->w(m.tok_embd), *inp_tok);
    // As llama.cpp's build_inp_embd, for any family that sets it (Granite).
    if (x_in == nullptr && hp.f_embedding_scale != 0.0f) x = ggml_scale(ctx, x, hp.f_embedding_scale);
    for (int il = l0; il < l1; il++) {
        if (m.arch == LLM_ARCH_PHI3) {
            x = phi3_layer(tr, ctx, il, x, *inp_pos, *inp_mask);
            continue;
        }
        const auto & L = m.layers[il];
        const int64_t n_head = hp.n_head(il), n_head_kv = hp.n_head_kv(il);
        ggml_tensor * inpSA = x;
        ggml_tensor * cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), L.attn_norm);

        ggml_tensor * Q = tr->mm(ctx, L.wq, cur);
        if (L.bq) Q = ggml_add(ctx, Q, L.bq);
        ggml_tensor * K = tr->mm(ctx, L.wk, cur);
        if (L.bk) K = ggml_add(ctx, K, L.bk);
        ggml_tensor * V = tr->mm(ctx, L.wv, cur);
        if (L.bv) V = ggml_add(ctx, V, L.bv);
        Q = ggml_reshape_3d(ctx, Q, d, n_head, n);
        K = ggml_reshape_3d(ctx, K, d, n_head_kv, n);
        V = ggml_reshape_3d(ctx, V, d, n_head_kv, n);
        if (L.attn_q_norm) Q = ggml_mul(ctx, ggml_rms_norm(ctx, Q, eps), L.attn_q_norm);
        if (L.attn_k_norm) K = ggml_mul(ctx, ggml_rms_norm(ctx, K, eps), L.attn_k_norm);
        // The frequency factors (Llama-3.x's rope_freqs, or nullptr) exactly as
        // llama_decode's graph takes them. ggml's ROPE backward is ROPE_BACK with
        // the same factors, so the gradient needs nothing more; the factors are
        // frozen (never a parameter: autodiff has no gradient for them).
        ggml_tensor * rope_factors = m.get_rope_factors(cp, (int) il);
        if (uses_rope(m, il)) {
            Q = ggml_rope_ext(ctx, Q, *inp_pos, rope_factors, hp.n_rot, hp.rope_type, cp.n_ctx_orig_yarn, cp.rope_freq_base,
                              cp.rope_freq_scale, cp.yarn_ext_factor, cp.yarn_attn_factor, cp.yarn_beta_fast, cp.yarn_beta_slow);
            K = ggml_rope_ext(ctx, K, *inp_pos, rope_factors, hp.n_rot, hp.rope_type, cp.n_ctx_orig_yarn, cp.rope_freq_base,
                              cp.rope_freq_scale, cp.yarn_ext_factor, cp.yarn_attn_factor, cp.yarn_beta_fast, cp.yarn_beta_slow);
        }

        // Attention as llama.cpp's non-flash branch (build_attn_mha), without a cache.
        ggml_tensor * q = ggml_permute(ctx, Q, 0, 2, 1, 3);                              // [d, n, h]
        ggml_tensor * k = ggml_permute(ctx, K, 0, 2, 1, 3);                              // [d, n, hkv]
        ggml_tensor * v = ggml_cont(ctx, ggml_transpose(ctx, ggml_permute(ctx, V, 0, 2, 1, 3)));  // [n, d, hkv]
        ggml_tensor * kq = ggml_mul_mat(ctx, k, q);                                       // [n, n, h]
        kq = ggml_soft_max_ext(ctx, kq, *inp_mask, kq_scale, 0.0f);
        ggml_tensor * kqv = ggml_mul_mat(ctx, v, kq);                                     // [d, n, h]
        cur = ggml_cont_2d(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3), d * n_head, n);
        cur = tr->mm(ctx, L.wo, cur);
        if (L.bo) cur = ggml_add(ctx, cur, L.bo);

        ggml_tensor * ffn_inp = ggml_add(ctx, granite_residual(m, ctx, cur), inpSA);
        cur = ggml_mul(ctx, ggml_rms_norm(ctx, ffn_inp, eps), L.ffn_norm);
        ggml_tensor * up = tr->mm(ctx, L.ffn_up, cur);
        ggml_tensor * gate = tr->mm(ctx, L.ffn_gate, cur);
        cur = ggml_swiglu_split(ctx, gate, up);
        cur = tr->mm(ctx, L.ffn_down, cur);
        x = ggml_add(ctx, granite_residual(m, ctx, cur), ffn_inp);
    }
    if (!head) return x;
    ggml_tensor * cur = ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), m.output_norm);
    // Only scored positions reach lm_head: exact loss masking, and the vocabulary
    // projection (the largest matmul for small models) runs on those rows only.
    cur = ggml_get_rows(ctx, cur, *inp_rows);
    return granite_logits(m, ctx, tr->mm(ctx, m.output, cur));  // [n_vocab, n_scored]
}

// transient_chunk_bytes bounds the F32 transpose a transient backward makes
// of a frozen weight at once: a larger weight (the output matrix above all:
// vocabulary × n_embd) is taken in row blocks, whose buffers the allocator
// reuses, instead of one transpose of the whole matrix (524 MiB for a 32k
// vocabulary at n_embd 4096; twice that where the transpose is a cast and a
// cont, off the CPU). A block's row count is a multiple of 64: the blocks are
// the contraction dimension of their products, and ggml's fast CPU kernel
// (llamafile's sgemm) takes only a multiple of the vector width, falling back
// to one dot product per element (1489 rows of ffn_down at TinyLlama's shape
// ran at a fraction of the speed of 1472).
constexpr size_t transient_chunk_bytes = 32u << 20;

// dequantize_transposed is the CPU kernel of transposed_f32: dst (F32, [rows of
// a, columns of a]) = aᵀ, with a of any type that dequantizes. ggml has no such
// op: a cast then cont(transpose) makes two passes, and the second reads one
// element per cache line and page (ggml's dup loop for a transposed source), the
// largest cost of a transient step after the matrix products. This reads a in
// tiles of transpose_tile_rows rows by a few blocks, dequantized into a buffer
// that stays in L1, and writes each tile's columns as dst rows.
constexpr int64_t transpose_tile_rows = 32;
constexpr int64_t transpose_tile_cols = 256;

void dequantize_transposed(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * a = dst->src[0];
    const int64_t cols = a->ne[0], rows = a->ne[1];
    const int64_t blk = ggml_blck_size(a->type);
    const int64_t tile_cols = transpose_tile_cols - transpose_tile_cols % blk;  // blk <= tile width: transposed_f32 checks
    ggml_to_float_t to_float = a->type == GGML_TYPE_F32 ? nullptr : ggml_get_type_traits(a->type)->to_float;
    float tile[transpose_tile_rows][transpose_tile_cols];
    const int64_t tiles = (rows + transpose_tile_rows - 1) / transpose_tile_rows;
    float * out = (float *) dst->data;
    for (int64_t t = ith; t < tiles; t += nth) {
        const int64_t r0 = t * transpose_tile_rows, nr = std::min(transpose_tile_rows, rows - r0);
        for (int64_t c0 = 0; c0 < cols; c0 += tile_cols) {
            const int64_t nc = std::min(tile_cols, cols - c0);
            for (int64_t k = 0; k < nr; k++) {
                const char * row = (const char *) a->data + (r0 + k) * a->nb[1] + (c0 / blk) * a->nb[0];
                if (to_float) {
                    to_float(row, tile[k], nc);
                } else {
                    std::memcpy(tile[k], row, (size_t) nc * sizeof(float));
                }
            }
            for (int64_t c = 0; c < nc; c++) {
                float * o = out + (c0 + c) * rows + r0;
                for (int64_t k = 0; k < nr; k++) o[k] = tile[k][c];
            }
        }
    }
}

// transposed_f32 is aᵀ in F32, contiguous. On the CPU one pass of
// dequantize_transposed; elsewhere (a GPU, whose backend has no custom ops and
// whose cont of a transpose is fast) the cast and cont ggml has. created
// receives every new tensor.
ggml_tensor * transposed_f32(ggml_context * ctx, ggml_tensor * a, std::vector<ggml_tensor *> & created) {
    ggml_tensor * base = a->view_src ? a->view_src : a;
    const bool host = base->buffer != nullptr && ggml_backend_buffer_is_host(base->buffer);
    const bool dequantizes = a->type == GGML_TYPE_F32 || (ggml_get_type_traits(a->type)->to_float != nullptr);
    if (host && dequantizes && ggml_n_dims(a) <= 2 && a->nb[0] == ggml_type_size(a->type) &&
        ggml_blck_size(a->type) <= transpose_tile_cols && a->ne[0] % ggml_blck_size(a->type) == 0) {
        ggml_tensor * args[] = {a};
        ggml_tensor * x = ggml_custom_4d(ctx, GGML_TYPE_F32, a->ne[1], a->ne[0], 1, 1, args, 1, dequantize_transposed,
                                         GGML_N_TASKS_MAX, nullptr);
        created.push_back(x);
        return x;
    }
    ggml_tensor * wf = a->type == GGML_TYPE_F32 ? a : ggml_cast(ctx, a, GGML_TYPE_F32);
    ggml_tensor * wt = ggml_transpose(ctx, wf);
    ggml_tensor * x = ggml_cont(ctx, wt);
    for (ggml_tensor * t : {wf, wt, x}) created.push_back(t);
    return x;
}

// transposed_product is aᵀ's product with y, MUL_MAT(cont(aᵀ), y), for a
// frozen weight a (any type, dequantized to F32 inside the graph) and a
// gradient y whose first dimension is a's rows: dx = Wᵀ·dy. A 2-D weight
// larger than transient_chunk_bytes in F32 is split into row blocks, the sum
// of their products (the same result up to float rounding of the sum).
ggml_tensor * transposed_product(ggml_context * ctx, ggml_tensor * a, ggml_tensor * y, std::vector<ggml_tensor *> & created) {
    auto product = [&](ggml_tensor * w, ggml_tensor * yw) {
        ggml_tensor * r = ggml_mul_mat(ctx, transposed_f32(ctx, w, created), yw);
        created.push_back(r);
        return r;
    };
    const int64_t rows = a->ne[1];
    int64_t per = std::max<int64_t>(1, (int64_t) (transient_chunk_bytes / (sizeof(float) * (size_t) a->ne[0])));
    if (per >= 64) per -= per % 64;
    if (per >= rows || ggml_n_dims(a) > 2 || ggml_n_dims(y) > 2) return product(a, y);
    ggml_tensor * sum = nullptr;
    for (int64_t r0 = 0; r0 < rows; r0 += per) {
        const int64_t nr = std::min(per, rows - r0);
        ggml_tensor * w = ggml_view_2d(ctx, a, a->ne[0], nr, a->nb[1], (size_t) r0 * a->nb[1]);
        ggml_tensor * yv = ggml_view_2d(ctx, y, nr, y->ne[1], y->nb[1], (size_t) r0 * y->nb[0]);
        ggml_tensor * yc = ggml_cont(ctx, yv);
        created.push_back(w);
        created.push_back(yv);
        created.push_back(yc);
        ggml_tensor * part = product(w, yc);
        // Added in row order: each block's buffers are free before the next's.
        sum = sum == nullptr ? part : ggml_add(ctx, sum, part);
        if (sum != part) created.push_back(sum);
    }
    return sum;
}

// rewrite_backward replaces, in the autodiff graph, every OUT_PROD with the MUL_MAT
// that computes the same product. ggml's CPU OUT_PROD is one vector update per
// output row and contraction step (re-dequantizing a quantized weight each time),
// far slower than the blocked GEMM kernels MUL_MAT uses. OUT_PROD(a, b) = a·bᵀ over
// their second dimension equals MUL_MAT(aᵀ, bᵀ) with both transposes made
// contiguous; for a frozen weight, aᵀ is the transposed copy made once at init, and
// for the gradient through a weight, bᵀ is the gradient itself (autodiff passes
// transpose(dy)). Only gradients change, and only in float rounding: the forward is
// untouched, so it still matches llama_decode bit for bit.
ggml_cgraph * rewrite_backward(fa_trainer * tr, ggml_context * ctx, ggml_cgraph * gf,
                               const std::vector<ggml_tensor *> & roots) {
    std::unordered_map<ggml_tensor *, ggml_tensor *> repl;
    std::vector<ggml_tensor *> created;  // new tensors: their operands may be replaced too
    const int n = ggml_graph_n_nodes(gf);
    for (int i = 0; i < n; i++) {
        ggml_tensor * node = ggml_graph_node(gf, i);
        if (node->op != GGML_OP_OUT_PROD || !ggml_is_contiguous(node)) continue;
        ggml_tensor * a = node->src[0];
        ggml_tensor * b = node->src[1];
        auto it = tr->transposed.find(a);
        const bool copy = it != tr->transposed.end();
        // Without a copy made at init the transpose is made inside the graph:
        // always for an F32 weight, and for a quantized one in the transient
        // mode (dequantized first). It is an intermediate, so the allocator
        // reuses its buffer for every layer's matrices.
        if (!copy && a->type != GGML_TYPE_F32 && tr->p.backward != 3) continue;  // quantized, no copy: OUT_PROD stays
        if (b->type != GGML_TYPE_F32) continue;
        ggml_tensor * y = nullptr;
        if (b->op == GGML_OP_TRANSPOSE && ggml_is_contiguous(b->src[0])) {
            y = b->src[0];
        } else {
            ggml_tensor * bt = ggml_transpose(ctx, b);
            y = ggml_cont(ctx, bt);
            created.push_back(bt);
            created.push_back(y);
        }
        ggml_tensor * r = nullptr;
        if (copy) {
            ggml_tensor * x = it->second;
            if (x->ne[0] != y->ne[0] || y->ne[2] % x->ne[2] != 0 || y->ne[3] % x->ne[3] != 0) continue;
            r = ggml_mul_mat(ctx, x, y);
            created.push_back(r);
        } else {
            if (a->ne[1] != y->ne[0] || y->ne[2] % a->ne[2] != 0 || y->ne[3] % a->ne[3] != 0) continue;
            r = transposed_product(ctx, a, y, created);
        }
        if (!ggml_are_same_shape(r, node)) continue;
        repl[node] = r;
    }
    if (repl.empty()) return gf;
    // Rewire every use: as an operand, and as the storage of a view (a reshape or
    // transpose of the gradient keeps a view_src pointer besides src[0]; left on
    // the old node it would point at a tensor the new graph never allocates). The
    // replacement has the old node's shape and contiguous layout, so views of it
    // keep their offsets and strides.
    auto rewire = [&](ggml_tensor * node) {
        for (int j = 0; j < GGML_MAX_SRC; j++) {
            auto it = node->src[j] ? repl.find(node->src[j]) : repl.end();
            if (it != repl.end()) node->src[j] = it->second;
        }
        if (node->view_src) {
            auto it = repl.find(node->view_src);
            if (it != repl.end()) node->view_src = it->second;
        }
    };
    for (int i = 0; i < n; i++) rewire(ggml_graph_node(gf, i));
    for (ggml_tensor * t : created) rewire(t);
    ggml_cgraph * g2 = ggml_new_graph_custom(ctx, tr->graph_size, false);
    for (ggml_tensor * r : roots) ggml_build_forward_expand(g2, r);
    return g2;
}

// set_opt_params writes the optimizer's hyper-parameters for the next step.
void set_opt_params(fa_trainer * tr, float lr) {
    const auto & p = tr->p;
    float op[7] = {lr, p.beta1, p.beta2, p.eps, p.weight_decay, 0, 0};
    const double t = (double) (tr->step + 1);
    op[5] = (float) (1.0 / (1.0 - std::pow((double) p.beta1, t)));
    op[6] = (float) (1.0 / (1.0 - std::pow((double) p.beta2, t)));
    if (p.optimizer == 1) {
        op[0] = lr;
        op[1] = p.weight_decay;
    }
    ggml_backend_tensor_set(tr->opt_params, op, 0, ggml_nbytes(tr->opt_params));
}

// splitmix64 is the dropout masks' generator: tiny, fast, and keyed by position so
// no generator state needs saving for a resume.
uint64_t splitmix64(uint64_t & x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// fill_masks draws every dropout mask of a step's micro-batch: element kept with
// probability 1-p and scaled by 1/(1-p) (inverted dropout, as torch's nn.Dropout).
// offset is the index of masks[0] among the step's masks in graph order, so a
// step split into one graph per block draws the masks the whole graph would.
void fill_masks(fa_trainer * tr, const std::vector<ggml_tensor *> & masks, size_t offset = 0) {
    const float p = tr->p.lora_dropout, keep = 1.0f / (1.0f - p);
    const uint32_t thr = (uint32_t) std::min(4294967295.0, std::floor((double) p * 4294967296.0));
    for (size_t s = 0; s < masks.size(); s++) {
        uint64_t st = (uint64_t) tr->p.seed * 0x100000001b3ULL;
        st = splitmix64(st) ^ (uint64_t) tr->step;
        st = splitmix64(st) ^ (uint64_t) tr->micro;
        st = splitmix64(st) ^ (uint64_t) (s + offset);
        std::vector<float> m(ggml_nelements(masks[s]));
        for (size_t i = 0; i < m.size(); i += 2) {
            const uint64_t r = splitmix64(st);
            m[i] = (uint32_t) r < thr ? 0.0f : keep;
            if (i + 1 < m.size()) m[i + 1] = (uint32_t) (r >> 32) < thr ? 0.0f : keep;
        }
        ggml_backend_tensor_set(masks[s], m.data(), 0, m.size() * sizeof(float));
    }
}

// prepare_batch checks a packed batch and computes its graph inputs: positions
// restarting per sequence, the scored rows (a target predicted from the row
// before it in its sequence), their labels and weights, and the block-diagonal
// causal mask.
batch_in prepare_batch(const fa_trainer * tr, const llama_token * tokens, const uint8_t * target,
                       const float * token_weight, int n, const int32_t * seq_start, int n_seqs) {
    const int64_t n_vocab = tr->model->output->ne[1];
    if (n <= 1) throw std::runtime_error("a training example needs at least 2 tokens");
    if (n_seqs <= 0 || seq_start[0] != 0) throw std::runtime_error("seq_start must begin with 0");
    batch_in in;
    in.pos.resize(n);
    std::vector<int> seq_of(n);
    for (int s = 0; s < n_seqs; s++) {
        const int b = seq_start[s], e = s + 1 < n_seqs ? seq_start[s + 1] : n;
        if (b < 0 || e > n || b >= e) throw std::runtime_error("seq_start is not strictly increasing within the batch");
        for (int i = b; i < e; i++) {
            in.pos[i] = i - b;
            seq_of[i] = s;
        }
    }
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) throw std::runtime_error("token id outside the vocabulary");
        if (target[i] && i > 0 && seq_of[i] == seq_of[i - 1]) {
            in.rows.push_back(i - 1);
            in.labels.push_back(tokens[i]);
            if (token_weight != nullptr) {
                if (!std::isfinite(token_weight[i])) throw std::runtime_error("a token weight is not finite");
                in.weights.push_back(token_weight[i]);
            }
        }
    }
    if (in.rows.empty()) throw std::runtime_error("no scored tokens in the batch (every target is a sequence's first token or unmarked)");
    // Block-diagonal causal mask: token i sees j when both are in one sequence and j <= i.
    in.mask.assign((size_t) n * n, -INFINITY);
    for (int i = 0; i < n; i++) {
        for (int j = seq_start[seq_of[i]]; j <= i; j++) in.mask[(size_t) i * n + j] = 0.0f;
    }
    return in;
}

// graph_meta is the room one step's graph needs: its tensors, the autodiff
// graph and the rewritten graph.
size_t graph_meta(const fa_trainer * tr) {
    return (size_t) tr->graph_size * ggml_tensor_overhead() + ggml_graph_overhead_custom(tr->graph_size, true) +
           ggml_graph_overhead_custom(tr->graph_size, false);
}

// graph_ctx owns a step's ggml context (metadata only: the scheduler allocates).
struct graph_ctx {
    ggml_context * c;
    explicit graph_ctx(size_t meta) : c(ggml_init({meta, nullptr, true})) {
        if (c == nullptr) throw std::runtime_error("cannot allocate graph memory");
    }
    ~graph_ctx() { ggml_free(c); }
    graph_ctx(const graph_ctx &) = delete;
    graph_ctx & operator=(const graph_ctx &) = delete;
};

// loss_graph is the loss over a head's logits and the inputs it reads.
struct loss_graph {
    ggml_tensor * loss = nullptr;
    ggml_tensor * labels = nullptr;   // one-hot rows, [n_vocab, n_scored]
    ggml_tensor * weights = nullptr;  // per scored row, when weighted
};

loss_graph build_loss(ggml_context * ctx, ggml_tensor * logits, int64_t n_vocab, int n_scored, bool weighted) {
    loss_graph lg;
    lg.labels = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_vocab, n_scored);
    ggml_set_input(lg.labels);
    if (!weighted) {
        lg.loss = ggml_cross_entropy_loss(ctx, logits, lg.labels);
    } else {
        // Weighted loss -(1/n) sum_r w_r log p_r (w may be negative: advantages).
        // ggml's cross-entropy backward assumes each label row sums to 1, so
        // scaling the one-hot rows by w would give a wrong gradient; this path
        // takes log p of the label through softmax, sum and log, whose backward
        // ggml has. (log p underflows to -inf only for p < 1e-38, never for the
        // model's own samples.)
        lg.weights = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 1, n_scored);
        ggml_set_input(lg.weights);
        ggml_tensor * p = ggml_soft_max(ctx, logits);
        ggml_tensor * lp = ggml_log(ctx, ggml_sum_rows(ctx, ggml_mul(ctx, p, lg.labels)));
        lg.loss = ggml_scale(ctx, ggml_sum(ctx, ggml_mul(ctx, lp, lg.weights)), -1.0f / (float) n_scored);
    }
    return lg;
}

// fill_loss_inputs writes a loss graph's labels (and weights).
void fill_loss_inputs(const loss_graph & lg, const batch_in & in, int64_t n_vocab) {
    const int n_scored = (int) in.rows.size();
    std::vector<float> onehot((size_t) n_vocab * n_scored, 0.0f);
    for (int r = 0; r < n_scored; r++) onehot[(size_t) r * n_vocab + in.labels[r]] = 1.0f;
    ggml_backend_tensor_set(lg.labels, onehot.data(), 0, onehot.size() * sizeof(float));
    if (lg.weights != nullptr) ggml_backend_tensor_set(lg.weights, in.weights.data(), 0, in.weights.size() * sizeof(float));
}

// fill_inputs writes build_forward's inputs that the graph has.
void fill_inputs(const batch_in & in, const llama_token * tokens, int n, ggml_tensor * tok, ggml_tensor * pos,
                 ggml_tensor * mask, ggml_tensor * rows) {
    static_assert(sizeof(llama_token) == sizeof(int32_t), "token ids are the graph's I32 input as they are");
    if (tok != nullptr) ggml_backend_tensor_set(tok, tokens, 0, n * sizeof(int32_t));
    if (pos != nullptr) ggml_backend_tensor_set(pos, in.pos.data(), 0, n * sizeof(int32_t));
    if (mask != nullptr) ggml_backend_tensor_set(mask, in.mask.data(), 0, in.mask.size() * sizeof(float));
    if (rows != nullptr) ggml_backend_tensor_set(rows, in.rows.data(), 0, in.rows.size() * sizeof(int32_t));
}

// add_backward differentiates gf's loss and adds, for every parameter with a
// gradient, either its optimizer step (fused) or weight·gradient into its
// accumulator (accumulate; the first graph of a step overwrites). When
// grad_of is set, *grad_out receives a copy of its gradient that outlives the
// computation. It returns the graph to compute (rewrite_backward's, when the
// backward mode asks for it).
ggml_cgraph * add_backward(fa_trainer * tr, ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * loss, bool accumulate,
                           float weight, ggml_tensor * grad_of = nullptr, ggml_tensor ** grad_out = nullptr) {
    const int n_fwd = ggml_graph_n_nodes(gf);
    std::vector<ggml_tensor *> grad_accs(n_fwd, nullptr);
    for (int i = 0; i < n_fwd; i++) {
        if (ggml_graph_node(gf, i) == loss) grad_accs[i] = tr->loss_grad;
    }
    ggml_build_backward_expand(ctx, gf, grad_accs.data());
    // CPU RMS_NORM_BACK reads its input gradient after writing its output; if
    // the allocator lets the two share memory the gradient is wrong. Keeping the
    // input alive as an output forbids the sharing.
    for (int i = 0; i < ggml_graph_n_nodes(gf); i++) {
        ggml_tensor * node = ggml_graph_node(gf, i);
        if (node->op == GGML_OP_RMS_NORM_BACK) ggml_set_output(node->src[0]);
    }
    std::vector<ggml_tensor *> roots = {loss};
    for (auto & pr : tr->params) {
        ggml_tensor * g = ggml_graph_get_grad(gf, pr.t);
        if (g == nullptr) continue;
        ggml_tensor * st = nullptr;
        if (accumulate) {
            // acc = (first ? 0 : acc) + weight·g, written back into acc.
            ggml_tensor * wg = ggml_scale(ctx, g, weight);
            st = ggml_cpy(ctx, pr.has_grad ? ggml_add(ctx, pr.acc, wg) : wg, pr.acc);
            pr.has_grad = true;
        } else {
            st = tr->p.optimizer == 0 ? ggml_opt_step_adamw(ctx, pr.t, g, pr.m, pr.v, tr->opt_params)
                                      : ggml_opt_step_sgd(ctx, pr.t, g, tr->opt_params);
        }
        ggml_build_forward_expand(gf, st);
        roots.push_back(st);
    }
    if (grad_of != nullptr) {
        ggml_tensor * g = ggml_graph_get_grad(gf, grad_of);
        if (g == nullptr) throw std::runtime_error("no gradient reaches a checkpointed segment's input");
        // A copy, because the gradient node itself may be replaced by rewrite_backward.
        *grad_out = ggml_cont(ctx, g);
        ggml_set_output(*grad_out);
        ggml_build_forward_expand(gf, *grad_out);
        roots.push_back(*grad_out);
    }
    return tr->p.backward != 0 ? rewrite_backward(tr, ctx, gf, roots) : gf;
}

// compute allocates and runs a graph on the trainer's scheduler, with fill
// writing its inputs in between.
template <typename F>
void compute(fa_trainer * tr, ggml_cgraph * gf, const char * what, F fill) {
    ggml_backend_sched_reset(tr->sched);
    if (!ggml_backend_sched_alloc_graph(tr->sched, gf)) throw std::runtime_error(std::string("cannot allocate the ") + what);
    fill();
    if (ggml_backend_sched_graph_compute(tr->sched, gf) != GGML_STATUS_SUCCESS) {
        throw std::runtime_error(std::string(what) + " failed");
    }
}

// run_step runs one graph over a packed batch: the loss only (train=false), a fused
// forward+backward+optimizer step (train, !accumulate), or forward+backward adding
// weight·gradient to the accumulators (train, accumulate; first zeroes them).
float run_step(fa_trainer * tr, const llama_token * tokens, const uint8_t * target, const float * token_weight, int n,
               const int32_t * seq_start, int n_seqs, bool train, float lr, int32_t * n_scored_out, bool accumulate = false,
               float weight = 1.0f, bool first = true);

void apply_step(fa_trainer * tr, float lr);

// run_step_checkpointed is run_step's training step with gradient checkpointing
// (see fa_train_params.checkpoint): the same losses, gradients and update, in
// one graph per block. Every block's input is kept on the host between the
// passes; the dropout masks are drawn with the indices the whole graph gives
// them, so the result does not depend on the partition.
float run_step_checkpointed(fa_trainer * tr, const batch_in & in, const llama_token * tokens, int n, bool weighted,
                            float lr, bool accumulate, float weight, bool first) {
    const llama_model & m = *tr->model;
    const int64_t n_vocab = m.output->ne[1], n_embd = m.hparams.n_embd;
    const int n_layer = (int) m.layers.size();
    const int n_scored = (int) in.rows.size();
    if (!accumulate || first) {
        tr->micro = 0;
        for (auto & pr : tr->params) pr.has_grad = false;
    }
    std::vector<ggml_tensor *> masks;
    struct mask_guard {
        fa_trainer * t;
        ~mask_guard() { t->drop_masks = nullptr; }
    } mguard{tr};
    const bool dropout = tr->p.lora_dropout > 0.0f;
    std::vector<std::vector<float>> xs(n_layer + 1);  // xs[l]: the hidden state entering block l (xs[n_layer]: the head's)
    std::vector<size_t> mask_offset(n_layer + 1, 0);

    // A segment's graph: blocks [l0, l1), from the embedding (l0 == 0) or from
    // the kept input x_in, to the next hidden state or (head) the logits.
    struct segment {
        ggml_tensor * x_in = nullptr;
        ggml_tensor * out = nullptr;
        ggml_tensor *tok = nullptr, *pos = nullptr, *mask = nullptr, *rows = nullptr;
    };
    auto build_segment = [&](ggml_context * ctx, int l0, int l1, bool head, bool grad_in) {
        segment sg;
        masks.clear();
        if (dropout) tr->drop_masks = &masks;
        if (l0 > 0) {
            sg.x_in = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_embd, n);
            ggml_set_input(sg.x_in);
            if (grad_in) ggml_set_param(sg.x_in);
        }
        sg.out = build_forward(tr, ctx, n, n_scored, &sg.tok, &sg.pos, &sg.mask, &sg.rows, l0, l1, sg.x_in, head);
        tr->drop_masks = nullptr;
        return sg;
    };
    auto fill_segment = [&](const segment & sg, int l0) {
        fill_inputs(in, tokens, n, sg.tok, sg.pos, sg.mask, sg.rows);
        set_swa_mask(tr, in, n);
        if (sg.x_in != nullptr) ggml_backend_tensor_set(sg.x_in, xs[l0].data(), 0, xs[l0].size() * sizeof(float));
        fill_masks(tr, masks, mask_offset[l0]);
    };

    // The top `tail` blocks run once, with the head, in the first backward
    // graph; the forward runs the blocks below them one by one, keeping each
    // block's input.
    const int tail = std::min(std::max(tr->p.checkpoint_keep, 1), std::max(n_layer, 1));
    const int split = std::max(n_layer - tail, 0);
    for (int l = 0; l < split; l++) {
        graph_ctx g(graph_meta(tr));
        const segment sg = build_segment(g.c, l, l + 1, false, false);
        ggml_set_output(sg.out);
        ggml_cgraph * gf = ggml_new_graph_custom(g.c, tr->graph_size, false);
        ggml_build_forward_expand(gf, sg.out);
        compute(tr, gf, "checkpointed forward", [&] { fill_segment(sg, l); });
        mask_offset[l + 1] = mask_offset[l] + masks.size();
        xs[l + 1].resize((size_t) n_embd * n);
        ggml_backend_tensor_get(sg.out, xs[l + 1].data(), 0, xs[l + 1].size() * sizeof(float));
        ggml_backend_sched_reset(tr->sched);
    }

    // Backward: the top blocks with the head, then each block below from the
    // last, each fed the gradient of its output (dy) through the surrogate
    // loss sum(x_out * dy), whose gradient with respect to x_out is dy
    // exactly.
    bool layer_params = false;
    for (auto & kv : tr->lora) layer_params = layer_params || kv.first != m.output;
    std::vector<float> dy;
    float loss_value = 0.0f;
    for (int l0 = split, l1 = n_layer; l0 >= 0; l1 = l0, l0--) {
        const bool is_head = l1 == n_layer;
        if (!is_head && !layer_params) break;
        graph_ctx g(graph_meta(tr));
        // The gradient must continue below this segment only if a block there trains.
        const segment sg = build_segment(g.c, l0, l1, is_head, layer_params);
        ggml_tensor * out = sg.out;
        loss_graph lg;
        ggml_tensor * dy_in = nullptr;
        ggml_tensor * loss = nullptr;
        if (is_head) {
            lg = build_loss(g.c, out, n_vocab, n_scored, weighted);
            loss = lg.loss;
        } else {
            dy_in = ggml_new_tensor_2d(g.c, GGML_TYPE_F32, n_embd, n);
            ggml_set_input(dy_in);
            loss = ggml_sum(g.c, ggml_mul(g.c, out, dy_in));
        }
        ggml_set_loss(loss);
        ggml_set_output(loss);
        ggml_cgraph * gf = ggml_new_graph_custom(g.c, tr->graph_size, true);
        ggml_build_forward_expand(gf, loss);
        ggml_tensor * dx = nullptr;
        const bool want_dx = sg.x_in != nullptr && layer_params;
        gf = add_backward(tr, g.c, gf, loss, true, weight, want_dx ? sg.x_in : nullptr, &dx);
        compute(tr, gf, "checkpointed backward", [&] {
            fill_segment(sg, l0);
            if (dy_in != nullptr) ggml_backend_tensor_set(dy_in, dy.data(), 0, dy.size() * sizeof(float));
            if (is_head) fill_loss_inputs(lg, in, n_vocab);
        });
        if (is_head) ggml_backend_tensor_get(loss, &loss_value, 0, sizeof(loss_value));
        if (want_dx) {
            dy.resize((size_t) n_embd * n);
            ggml_backend_tensor_get(dx, dy.data(), 0, dy.size() * sizeof(float));
        }
        ggml_backend_sched_reset(tr->sched);
        xs[l1].clear();  // the input of the segment above: no longer needed
    }
    if (accumulate) {
        tr->micro++;
    } else {
        apply_step(tr, lr);
    }
    return loss_value;
}

float run_step(fa_trainer * tr, const llama_token * tokens, const uint8_t * target, const float * token_weight, int n,
               const int32_t * seq_start, int n_seqs, bool train, float lr, int32_t * n_scored_out, bool accumulate,
               float weight, bool first) {
    const llama_model & m = *tr->model;
    const int64_t n_vocab = m.output->ne[1];
    const batch_in in = prepare_batch(tr, tokens, target, token_weight, n, seq_start, n_seqs);
    const int n_scored = (int) in.rows.size();
    *n_scored_out = n_scored;
    if (train && tr->p.checkpoint) {
        return run_step_checkpointed(tr, in, tokens, n, token_weight != nullptr, lr, accumulate, weight, first);
    }

    graph_ctx g(graph_meta(tr));
    ggml_context * ctx = g.c;
    if (train && (!accumulate || first)) tr->micro = 0;
    std::vector<ggml_tensor *> masks;
    struct mask_guard {
        fa_trainer * t;
        ~mask_guard() { t->drop_masks = nullptr; }
    } mguard{tr};
    if (train && tr->p.lora_dropout > 0.0f) tr->drop_masks = &masks;
    ggml_tensor *tok, *pos, *mask, *rows;
    ggml_tensor * logits = build_forward(tr, ctx, n, n_scored, &tok, &pos, &mask, &rows);
    tr->drop_masks = nullptr;
    const loss_graph lg = build_loss(ctx, logits, n_vocab, n_scored, token_weight != nullptr);
    ggml_set_loss(lg.loss);
    ggml_set_output(lg.loss);

    ggml_cgraph * gf = ggml_new_graph_custom(ctx, tr->graph_size, true);
    ggml_build_forward_expand(gf, lg.loss);
    if (train) {
        if (accumulate && first) {
            for (auto & pr : tr->params) pr.has_grad = false;
        }
        gf = add_backward(tr, ctx, gf, lg.loss, accumulate, weight);
    }
    compute(tr, gf, "training graph", [&] {
        fill_inputs(in, tokens, n, tok, pos, mask, rows);
        set_swa_mask(tr, in, n);
        fill_masks(tr, masks);
        fill_loss_inputs(lg, in, n_vocab);
        if (train && !accumulate) set_opt_params(tr, lr);
    });
    float out = 0.0f;
    ggml_backend_tensor_get(lg.loss, &out, 0, sizeof(out));
    if (train && !accumulate) tr->step++;
    if (accumulate) tr->micro++;
    ggml_backend_sched_reset(tr->sched);
    return out;
}

// apply_step takes one optimizer step with the accumulated gradients: the same
// update the fused step makes from one batch's gradient.
void apply_step(fa_trainer * tr, float lr) {
    graph_ctx g((size_t) (4 * tr->params.size() + 16) * ggml_tensor_overhead() +
                ggml_graph_overhead_custom(tr->graph_size, false));
    ggml_cgraph * gf = ggml_new_graph_custom(g.c, tr->graph_size, false);
    int n = 0;
    for (auto & pr : tr->params) {
        if (!pr.has_grad) continue;
        ggml_tensor * st = tr->p.optimizer == 0 ? ggml_opt_step_adamw(g.c, pr.t, pr.acc, pr.m, pr.v, tr->opt_params)
                                                : ggml_opt_step_sgd(g.c, pr.t, pr.acc, tr->opt_params);
        ggml_build_forward_expand(gf, st);
        n++;
    }
    if (n == 0) throw std::runtime_error("no accumulated gradient to apply (call fa_train_accumulate first)");
    compute(tr, gf, "optimizer step", [&] { set_opt_params(tr, lr); });
    ggml_backend_sched_reset(tr->sched);
    for (auto & pr : tr->params) pr.has_grad = false;
    tr->step++;
    tr->micro = 0;
}

// run_forward runs the training graph's forward (no gradient, no dropout) over
// a batch's inputs and hands the logits of its in.rows to read, before the
// scheduler is reset.
template <typename F>
void run_forward(fa_trainer * tr, const llama_token * tokens, int n, const batch_in & in, F read) {
    const int n_rows = (int) in.rows.size();
    graph_ctx g((size_t) tr->graph_size * ggml_tensor_overhead() + ggml_graph_overhead_custom(tr->graph_size, false));
    ggml_tensor *tok, *pos, *mask, *rows;
    ggml_tensor * logits = build_forward(tr, g.c, n, n_rows, &tok, &pos, &mask, &rows);
    ggml_set_output(logits);
    ggml_cgraph * gf = ggml_new_graph_custom(g.c, tr->graph_size, false);
    ggml_build_forward_expand(gf, logits);
    compute(tr, gf, "forward", [&] {
        fill_inputs(in, tokens, n, tok, pos, mask, rows);
        set_swa_mask(tr, in, n);
    });
    read(logits);
    ggml_backend_sched_reset(tr->sched);
}

// forward_logits runs the training forward for one sequence and copies the logits of
// every position to out ([n][n_vocab]); it exists to prove that the training graph
// and llama_decode compute the same function.
void forward_logits(fa_trainer * tr, const llama_token * tokens, int n, float * out) {
    const int64_t n_vocab = tr->model->output->ne[1];
    batch_in in;
    in.pos.resize(n);
    in.rows.resize(n);
    in.mask.assign((size_t) n * n, -INFINITY);
    for (int i = 0; i < n; i++) {
        in.pos[i] = i;
        in.rows[i] = i;
        for (int j = 0; j <= i; j++) in.mask[(size_t) i * n + j] = 0.0f;
    }
    run_forward(tr, tokens, n, in, [&](ggml_tensor * logits) {
        ggml_backend_tensor_get(logits, out, 0, (size_t) n * n_vocab * sizeof(float));
    });
}

// token_logprobs runs the training forward (no dropout, nothing changed) over a
// packed batch and writes log p of every scored token, in batch order: the
// current policy's log-probabilities, for the PPO ratio and the KL term of
// reward training, computed by the very graph the step differentiates.
int token_logprobs(fa_trainer * tr, const llama_token * tokens, const uint8_t * target, int n, const int32_t * seq_start,
                   int n_seqs, float * out, int out_len) {
    const int64_t n_vocab = tr->model->output->ne[1];
    const batch_in in = prepare_batch(tr, tokens, target, nullptr, n, seq_start, n_seqs);
    const int n_scored = (int) in.rows.size();
    if (n_scored > out_len) throw std::runtime_error("output buffer shorter than the scored tokens");
    run_forward(tr, tokens, n, in, [&](ggml_tensor * logits) {
        std::vector<float> row(n_vocab);
        for (int r = 0; r < n_scored; r++) {
            ggml_backend_tensor_get(logits, row.data(), (size_t) r * n_vocab * sizeof(float), n_vocab * sizeof(float));
            float maxv = row[0];
            for (int64_t v = 1; v < n_vocab; v++) maxv = std::max(maxv, row[v]);
            double sum = 0.0;  // in double: a large vocabulary's sum loses bits in float
            for (int64_t v = 0; v < n_vocab; v++) sum += std::exp((double) row[v] - (double) maxv);
            out[r] = (float) ((double) row[in.labels[r]] - (double) maxv - std::log(sum));
        }
    });
    return n_scored;
}

// save_params writes the trainable tensors (and, with moments, AdamW's m and v) to
// a GGUF whose metadata set_kv fills in; the file appears whole or not at all.
template <typename F>
void save_params(fa_trainer * t, const std::string & path, bool moments, F set_kv) {
    gguf_context * g = gguf_init_empty();
    set_kv(g);
    size_t bytes = 1024;
    for (auto & pr : t->params) bytes += (moments ? 3 : 1) * (ggml_nbytes(pr.t) + ggml_tensor_overhead());
    ggml_init_params ip = {bytes, nullptr, false};
    ggml_context * hctx = ggml_init(ip);
    try {
        for (auto & pr : t->params) {
            gguf_add_tensor(g, host_copy(hctx, pr.t, pr.name));
            if (moments && pr.m) gguf_add_tensor(g, host_copy(hctx, pr.m, pr.name + ".m"));
            if (moments && pr.v) gguf_add_tensor(g, host_copy(hctx, pr.v, pr.name + ".v"));
        }
        write_gguf(g, path);
    } catch (...) {
        gguf_free(g);
        ggml_free(hctx);
        throw;
    }
    gguf_free(g);
    ggml_free(hctx);
}

// guarded runs f (which returns the entry point's result) for a C entry point:
// any exception becomes -1 with its message in err, which the Go side
// reports, and the scheduler is reset when f may have left a graph
// allocated. No exception crosses into C.
template <typename F>
int32_t guarded(fa_trainer * t, char * err, size_t err_len, const char * what, bool reset_sched, F && f) {
    try {
        return f();
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, (std::string("unknown exception ") + what).c_str());
    }
    if (reset_sched) ggml_backend_sched_reset(t->sched);
    return -1;
}

}  // namespace

extern "C" {

int32_t fa_train_logits(fa_trainer * t, const llama_token * tokens, int32_t n, float * out, char * err, size_t err_len) {
    return guarded(t, err, err_len, "in the training forward", true, [&]() -> int32_t {
        forward_logits(t, tokens, n, out);
        return 0;
    });
}

fa_trainer * fa_train_init(llama_model * model, llama_context * ctx_ref, const fa_train_params * p,
                           const char * resume_adapter, char * err, size_t err_len) {
    fa_trainer * tr = new fa_trainer();
    try {
        init(tr, model, ctx_ref, p, resume_adapter);
        return tr;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while creating the trainer");
    }
    delete tr;
    return nullptr;
}

int32_t fa_train_step(fa_trainer * t, const llama_token * tokens, const uint8_t * target, const float * token_weight,
                      int32_t n_tokens, const int32_t * seq_start, int32_t n_seqs, bool train, float lr, float * loss,
                      int32_t * n_scored, char * err, size_t err_len) {
    return guarded(t, err, err_len, "in a training step", true, [&]() -> int32_t {
        *loss = run_step(t, tokens, target, token_weight, n_tokens, seq_start, n_seqs, train, lr, n_scored);
        return 0;
    });
}

int32_t fa_train_accumulate(fa_trainer * t, const llama_token * tokens, const uint8_t * target, const float * token_weight,
                            int32_t n_tokens, const int32_t * seq_start, int32_t n_seqs, float weight, bool first,
                            float * loss, int32_t * n_scored, char * err, size_t err_len) {
    return guarded(t, err, err_len, "in a gradient accumulation", true, [&]() -> int32_t {
        *loss = run_step(t, tokens, target, token_weight, n_tokens, seq_start, n_seqs, true, 0.0f, n_scored, true, weight,
                         first);
        return 0;
    });
}

int32_t fa_train_token_logprobs(fa_trainer * t, const llama_token * tokens, const uint8_t * target, int32_t n_tokens,
                                const int32_t * seq_start, int32_t n_seqs, float * out, int32_t out_len, char * err,
                                size_t err_len) {
    return guarded(t, err, err_len, "in a forward pass", true, [&]() -> int32_t {
        return token_logprobs(t, tokens, target, n_tokens, seq_start, n_seqs, out, out_len);
    });
}

int32_t fa_train_apply(fa_trainer * t, float lr, char * err, size_t err_len) {
    return guarded(t, err, err_len, "in an optimizer step", true, [&]() -> int32_t {
        apply_step(t, lr);
        return 0;
    });
}

int32_t fa_train_save(fa_trainer * t, const char * path, const char * const * keys, const char * const * vals,
                      int32_t n_kv, char * err, size_t err_len) {
    return guarded(t, err, err_len, "while saving", false, [&]() -> int32_t {
        if (t->p.full) {
            llama_model_save_to_file(t->model, path);
            return 0;
        }
        // Checked before the GGUF context exists, so a bad key leaks nothing.
        if (n_kv < 0 || (n_kv > 0 && (keys == nullptr || vals == nullptr))) {
            throw std::runtime_error("adapter metadata: bad key/value arrays");
        }
        for (int32_t i = 0; i < n_kv; i++) {
            if (keys[i] == nullptr || vals[i] == nullptr || std::strncmp(keys[i], "fireact.", 8) != 0 || keys[i][8] == 0) {
                throw std::runtime_error(std::string("adapter metadata key ") + (keys[i] ? keys[i] : "(null)") +
                                         ": must start with \"fireact.\" and have a value");
            }
        }
        save_params(t, path, false, [t, keys, vals, n_kv](gguf_context * g) {
            gguf_set_val_str(g, "general.architecture", model_arch_name(t->model).c_str());
            gguf_set_val_str(g, "general.type", "adapter");
            gguf_set_val_str(g, "adapter.type", "lora");
            gguf_set_val_f32(g, "adapter.lora.alpha", t->p.alpha);
            // gguf copies the strings into the context.
            for (int32_t i = 0; i < n_kv; i++) gguf_set_val_str(g, keys[i], vals[i]);
            // After the caller's keys: the table the graph used is a fact, not an option.
            if (!t->rope_factors.empty()) gguf_set_val_str(g, "fireact.rope_factors", t->rope_factors.c_str());
        });
        return 0;
    });
}

int32_t fa_train_save_state(fa_trainer * t, const char * path, char * err, size_t err_len) {
    return guarded(t, err, err_len, "while saving the training state", false, [&]() -> int32_t {
        save_params(t, path, true, [t](gguf_context * g) {
            gguf_set_val_str(g, "general.type", "fireact-train-state");
            gguf_set_val_u64(g, "fireact.train.step", (uint64_t) t->step);
            gguf_set_val_bool(g, "fireact.train.full", t->p.full);
            gguf_set_val_i32(g, "fireact.train.rank", t->p.rank);
            gguf_set_val_i32(g, "fireact.train.optimizer", t->p.optimizer);
        });
        return 0;
    });
}

int32_t fa_train_load_state(fa_trainer * t, const char * path, char * err, size_t err_len) {
    ggml_context * rctx = nullptr;
    gguf_context * g = nullptr;
    try {
        gguf_init_params gp = {false, &rctx};
        g = gguf_init_from_file(path, gp);
        if (g == nullptr) throw std::runtime_error(std::string("cannot read training state ") + path);
        int64_t k = gguf_find_key(g, "fireact.train.step");
        if (k < 0) throw std::runtime_error(std::string(path) + " is not a fireact training state");
        const uint64_t step = gguf_get_val_u64(g, k);
        // Check every tensor before changing any, so a mismatched file changes nothing.
        std::vector<std::pair<ggml_tensor *, ggml_tensor *>> pairs;
        for (auto & pr : t->params) {
            for (auto dst : {std::make_pair(pr.t, pr.name), std::make_pair(pr.m, pr.name + ".m"), std::make_pair(pr.v, pr.name + ".v")}) {
                if (dst.first == nullptr) continue;
                ggml_tensor * src = ggml_get_tensor(rctx, dst.second.c_str());
                if (src == nullptr || !ggml_are_same_shape(src, dst.first) || src->type != dst.first->type) {
                    throw std::runtime_error("training state " + std::string(path) + " does not match this trainer (tensor " +
                                             dst.second + ")");
                }
                pairs.push_back({dst.first, src});
            }
        }
        for (auto & pq : pairs) ggml_backend_tensor_set(pq.first, pq.second->data, 0, ggml_nbytes(pq.second));
        t->step = (int64_t) step;
        gguf_free(g);
        ggml_free(rctx);
        return 0;
    } catch (const std::exception & e) {
        set_err(err, err_len, e.what());
    } catch (...) {
        set_err(err, err_len, "unknown exception while loading the training state");
    }
    if (g) gguf_free(g);
    if (rctx) ggml_free(rctx);
    return -1;
}

int64_t fa_train_n_steps(const fa_trainer * t) { return t->step; }
int32_t fa_train_n_params(const fa_trainer * t) { return (int32_t) t->params.size(); }
int64_t fa_train_n_param_elements(const fa_trainer * t) {
    int64_t n = 0;
    for (auto & pr : t->params) n += ggml_nelements(pr.t);
    return n;
}
const char * fa_train_param_name(const fa_trainer * t, int32_t i) {
    if (i < 0 || i >= (int32_t) t->params.size()) return nullptr;
    return t->params[i].name.c_str();
}
int64_t fa_train_param_size(const fa_trainer * t, int32_t i) {
    if (i < 0 || i >= (int32_t) t->params.size()) return -1;
    return ggml_nelements(t->params[i].t);
}
int32_t fa_train_param_get(fa_trainer * t, int32_t i, float * dst, int64_t n) {
    if (i < 0 || i >= (int32_t) t->params.size() || n != ggml_nelements(t->params[i].t)) return -1;
    ggml_backend_tensor_get(t->params[i].t, dst, 0, n * sizeof(float));
    return 0;
}
int32_t fa_train_param_set(fa_trainer * t, int32_t i, const float * src, int64_t n) {
    if (i < 0 || i >= (int32_t) t->params.size() || n != ggml_nelements(t->params[i].t)) return -1;
    ggml_backend_tensor_set(t->params[i].t, src, 0, n * sizeof(float));
    return 0;
}

void fa_train_set_smooth_forward(fa_trainer * t, bool on) { t->smooth_forward = on; }

const char * fa_train_rope_factors(const fa_trainer * t) { return t->rope_factors.c_str(); }

void fa_train_free(fa_trainer * t) { delete t; }

}  // extern "C"
