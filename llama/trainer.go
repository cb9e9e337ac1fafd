package llama

/*
#include <stdlib.h>
#include "train.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"
)

// Target selects the weights a LoRA adapter modifies.
type Target uint32

// LoRA targets (combine with |).
const (
	TargetQ      Target = C.FA_T_Q
	TargetK      Target = C.FA_T_K
	TargetV      Target = C.FA_T_V
	TargetO      Target = C.FA_T_O
	TargetGate   Target = C.FA_T_GATE
	TargetUp     Target = C.FA_T_UP
	TargetDown   Target = C.FA_T_DOWN
	TargetOutput Target = C.FA_T_OUTPUT
	// TargetQKV is a fused query/key/value projection (phi3's
	// blk.N.attn_qkv.weight, HF's qkv_proj); phi3 has it instead of q, k, v.
	TargetQKV Target = C.FA_T_QKV
	// TargetsQV is FireAct's (and PEFT's) default: the query and value projections.
	TargetsQV = TargetQ | TargetV
	// TargetsAll is every attention and feed-forward projection the model
	// has: on phi3, qkv, o, up (gate and up fused) and down.
	TargetsAll = TargetQ | TargetK | TargetV | TargetO | TargetGate | TargetUp | TargetDown | TargetQKV
)

// ParseTargets parses "q,v", "all", "all+output" or names from q,k,v,qkv,o,gate,up,down,output.
func ParseTargets(s string) (Target, error) {
	var t Target
	names := map[string]Target{"q": TargetQ, "k": TargetK, "v": TargetV, "o": TargetO, "gate": TargetGate,
		"up": TargetUp, "down": TargetDown, "output": TargetOutput, "all": TargetsAll, "qkv": TargetQKV}
	for _, part := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == ',' || r == '+' || r == ' ' }) {
		part = strings.TrimSuffix(strings.TrimPrefix(part, "attn_"), "_proj")
		v, ok := names[part]
		if !ok {
			return 0, fmt.Errorf("unknown LoRA target %q (want q,k,v,qkv,o,gate,up,down,output or all)", part)
		}
		t |= v
	}
	if t == 0 {
		return 0, fmt.Errorf("no LoRA targets in %q", s)
	}
	return t, nil
}

// TargetsOf returns the targets whose base tensors are named (an adapter's
// AdapterInfo.Targets, "blk.N.attn_q.weight" ... "output.weight"), so that
// training can continue an adapter on exactly the matrices it adapts.
func TargetsOf(baseTensors []string) (Target, error) {
	kinds := map[string]Target{"attn_q": TargetQ, "attn_k": TargetK, "attn_v": TargetV, "attn_output": TargetO,
		"ffn_gate": TargetGate, "ffn_up": TargetUp, "ffn_down": TargetDown, "attn_qkv": TargetQKV}
	var t Target
	for _, n := range baseTensors {
		if n == "output.weight" {
			t |= TargetOutput
			continue
		}
		parts := strings.Split(n, ".")
		if len(parts) != 4 || parts[0] != "blk" || parts[3] != "weight" || kinds[parts[2]] == 0 {
			return 0, fmt.Errorf("LoRA on %s: training adapts only the attention and feed-forward projections and the output", n)
		}
		t |= kinds[parts[2]]
	}
	return t, nil
}

// Optimizer is the optimizer of a training step.
type Optimizer string

// Optimizers; the zero value is AdamW.
const (
	OptimizerAdamW Optimizer = "adamw" // FireAct's (PEFT's) optimizer
	OptimizerSGD   Optimizer = "sgd"
)

// ParseOptimizer checks an optimizer name, case-insensitively ("" is AdamW).
func ParseOptimizer(s string) (Optimizer, error) {
	switch o := Optimizer(strings.ToLower(s)); o {
	case "":
		return OptimizerAdamW, nil
	case OptimizerAdamW, OptimizerSGD:
		return o, nil
	}
	return "", fmt.Errorf("unknown optimizer %q (adamw or sgd)", s)
}

// Backward is how gradients pass through frozen weights (dx = Wᵀ·dy).
type Backward string

// Backward modes; the zero value is BackwardTransient.
const (
	// BackwardTransient dequantizes and transposes each weight inside the
	// step's graph, so no copy outlives its layer: the least memory with exact
	// gradients, and the fastest on CPU.
	BackwardTransient Backward = "transient"
	// BackwardTransposed keeps a transposed F32 copy of each weight for the
	// trainer's life.
	BackwardTransposed Backward = "transposed"
	// BackwardTransposedQ8 keeps that copy in Q8_0: a quarter of the memory,
	// dx slightly approximate.
	BackwardTransposedQ8 Backward = "transposed-q8"
	// BackwardOutProd is ggml's autodiff as is: no extra memory, slow.
	BackwardOutProd Backward = "outprod"
)

// ParseBackward checks a backward mode name, case-insensitively ("" is
// BackwardTransient).
func ParseBackward(s string) (Backward, error) {
	switch b := Backward(strings.ToLower(s)); b {
	case "":
		return BackwardTransient, nil
	case BackwardTransient, BackwardTransposed, BackwardTransposedQ8, BackwardOutProd:
		return b, nil
	}
	return "", fmt.Errorf("unknown backward %q (transient, transposed, transposed-q8 or outprod)", s)
}

// TrainerOptions configure a Trainer. The zero value (with Rank set) is FireAct's
// recipe: AdamW, alpha = 2·rank, targets q and v.
type TrainerOptions struct {
	// LoRA: Rank > 0 (default 8), Alpha (default 2·Rank), Targets (default q,v).
	Rank    int
	Alpha   float32
	Targets Target
	// Full trains every F32 tensor of the model instead of an adapter (small F32
	// models; the model must be loaded with NoMmap because its weights change).
	Full bool
	// Optimizer is OptimizerAdamW (default) or OptimizerSGD.
	Optimizer   Optimizer
	WeightDecay float32
	Beta1       float32 // default 0.9
	Beta2       float32 // default 0.999
	Eps         float32 // default 1e-8
	Seed        uint32  // initialisation of A
	Threads     int     // default: all CPUs
	// F32Base keeps F32 copies of every frozen matrix: faster backward for small
	// quantized models at the cost of 4 bytes per weight. F16/BF16 weights are
	// always copied (ggml's CPU backward has no F16 kernel).
	F32Base bool
	// F32Head keeps an F32 copy of the output matrix (vocab × n_embd × 4 bytes); a
	// quantized head makes every step many times slower.
	F32Head bool
	// LoRADropout is the dropout probability on each adapter's input during
	// training steps (PEFT's lora_dropout; FireAct's 0.05): the adapter computes
	// B·A·dropout(x) while the frozen W still sees x. Masks are drawn from Seed, the
	// step and the micro-batch, so a resumed run draws the same ones. 0: none.
	LoRADropout float32
	// ResumeAdapter starts from the A/B of an adapter file instead of fresh ones.
	ResumeAdapter string
	// Backward selects how gradients pass through frozen weights (default
	// BackwardTransient; see the Backward constants).
	Backward Backward
	// GradientCheckpointing (LoRA only) keeps only each block's input from
	// the forward and recomputes one block at a time in the backward, as
	// Hugging Face's gradient_checkpointing does: one block's activations in
	// memory instead of every block's, for about one more forward per step.
	// Losses, gradients and updates are the same computation either way.
	GradientCheckpointing bool
	// CheckpointKeep is, with GradientCheckpointing, the number of blocks
	// at the top of the model that are not recomputed: their activations are
	// kept from the one forward they get, which runs with the head's in one
	// graph. Each block kept saves one block's forward a step and holds one
	// block's activations; values below 1 mean 1 (recomputing the top block
	// would follow its own forward directly, which never pays), values above
	// the block count mean every block (no recomputation at all). The step
	// is the same computation for every value.
	CheckpointKeep int
	// AdapterMetadata are string key/values Save writes into the adapter GGUF
	// beside llama.cpp's own keys (general.architecture, adapter.type,
	// adapter.lora.alpha): how the adapter was trained and how to prompt it.
	// Every key must start with "fireact." (AdapterMetadataPrefix), so none can
	// replace a key llama.cpp reads. Ignored for full training (a model file).
	AdapterMetadata map[string]string
	// ServeContext is the context per sequence the adapter will be served
	// at (llama.cpp's n_ctx divided by its parallel sequences); 0 means 256.
	// LongRoPE models (Phi-3.5/4-mini) train with the RoPE factor table
	// llama.cpp picks for it: long above the model's original context,
	// short otherwise (see Trainer.RopeFactors).
	ServeContext int
}

// AdapterMetadataPrefix starts every key of TrainerOptions.AdapterMetadata.
const AdapterMetadataPrefix = "fireact."

// String returns the targets as ParseTargets reads them ("q,v", "all",
// "all,output"); the zero Target is "".
func (t Target) String() string {
	var parts []string
	if t&TargetsAll == TargetsAll {
		parts = append(parts, "all")
	} else {
		for _, n := range []struct {
			t    Target
			name string
		}{{TargetQ, "q"}, {TargetK, "k"}, {TargetV, "v"}, {TargetQKV, "qkv"}, {TargetO, "o"}, {TargetGate, "gate"}, {TargetUp, "up"}, {TargetDown, "down"}} {
			if t&n.t != 0 {
				parts = append(parts, n.name)
			}
		}
	}
	if t&TargetOutput != 0 {
		parts = append(parts, "output")
	}
	return strings.Join(parts, ",")
}

// checkAdapterMetadata refuses keys llama.cpp might read and text the C side
// cannot carry (a NUL would cut the string short, silently).
func checkAdapterMetadata(kv map[string]string) error {
	for k, v := range kv {
		if !strings.HasPrefix(k, AdapterMetadataPrefix) || len(k) == len(AdapterMetadataPrefix) {
			return fmt.Errorf("adapter metadata key %q: must start with %q", k, AdapterMetadataPrefix)
		}
		if strings.IndexByte(k, 0) >= 0 || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("adapter metadata %q: NUL byte in the key or value", k)
		}
	}
	return nil
}

// Trainer trains a LoRA adapter (or all weights) of a model with our own ggml
// training graph: no KV cache, exact loss masking, packed sequences with
// block-diagonal attention, AdamW or SGD in the same graph.
type Trainer struct {
	mu      sync.Mutex
	m       *Model
	ref     *Context
	c       *C.fa_trainer
	opts    TrainerOptions
	cleanup runtime.Cleanup
}

// trainerResources is what a trainer's cleanup frees: its C state (weights'
// transposed copies, optimizer moments: gigabytes on a 7B model) before the
// reference context and the model it reads, which the argument keeps alive.
type trainerResources struct {
	c   *C.fa_trainer
	ref *Context
	m   *Model
}

// TrainBatch is one step's data: one or more sequences packed end to end.
type TrainBatch struct {
	Tokens []Token
	// Target marks the tokens that are scored (predicted from their prefix); a
	// sequence's first token cannot be a target.
	Target []bool
	// SeqStart holds each sequence's first index; nil means one sequence.
	SeqStart []int
	// Weights, when set (one per token, read where Target is set), make the
	// loss -(1/scored)·Σ w_i·log p(token_i) instead of the mean NLL. Weights
	// may be negative. Policy-gradient training sets w_i to the advantage of
	// the rollout token i belongs to, times PPO's ratio and clip indicator
	// and plus the KL term's coefficient, all computed from log-probabilities
	// outside the graph: the gradient of this loss is then exactly the
	// clipped surrogate's.
	Weights []float32
}

// StepResult is the outcome of a step or an evaluation.
type StepResult struct {
	Loss   float64 // mean negative log-likelihood over scored tokens (nats); the weighted loss for a batch with Weights
	Scored int     // scored tokens
}

// NewTrainer creates a trainer for m.
func NewTrainer(m *Model, opts TrainerOptions) (*Trainer, error) {
	if opts.Full && !m.noMmap {
		return nil, fmt.Errorf("llama: trainer: full training changes the weights in place; load the model with NoMmap")
	}
	if !opts.Full {
		if opts.Rank <= 0 {
			opts.Rank = 8
		}
		if opts.Alpha == 0 {
			opts.Alpha = float32(2 * opts.Rank)
		}
		if opts.Targets == 0 {
			opts.Targets = defaultTargets(m)
		}
		if opts.Targets&TargetOutput != 0 && m.file != nil {
			if _, ok := m.file.Tensor("output.weight"); !ok {
				// llama.cpp then uses token_embd.weight as the output matrix. An
				// adapter on it is keyed by that one tensor, so llama.cpp would
				// apply it to the embedding lookup too (in the transposed
				// layout it expects there): no adapter we could write would
				// mean "the output projection only".
				return nil, fmt.Errorf("llama: trainer: LoRA target output: the model ties its output to token_embd.weight (no output.weight), and llama.cpp cannot load an adapter for the output projection alone; train without output (e.g. --targets all)")
			}
		}
	}
	if err := checkAdapterMetadata(opts.AdapterMetadata); err != nil {
		return nil, fmt.Errorf("llama: trainer: %w", err)
	}
	if opts.ServeContext < 0 {
		return nil, fmt.Errorf("llama: trainer: ServeContext %d is negative", opts.ServeContext)
	}
	if opts.LoRADropout < 0 || opts.LoRADropout >= 1 {
		return nil, fmt.Errorf("llama: trainer: LoRA dropout %g outside [0, 1)", opts.LoRADropout)
	}
	if opts.Full && opts.LoRADropout > 0 {
		return nil, fmt.Errorf("llama: trainer: LoRA dropout applies to LoRA training, not full training")
	}
	if opts.Full && opts.GradientCheckpointing {
		return nil, fmt.Errorf("llama: trainer: gradient checkpointing applies to LoRA training, not full training")
	}
	if opts.Beta1 == 0 {
		opts.Beta1 = 0.9
	}
	if opts.Beta2 == 0 {
		opts.Beta2 = 0.999
	}
	if opts.Eps == 0 {
		opts.Eps = 1e-8
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	var err error
	if opts.Optimizer, err = ParseOptimizer(string(opts.Optimizer)); err != nil {
		return nil, fmt.Errorf("llama: trainer: %w", err)
	}
	var optimizer C.int32_t // train.h: 0 AdamW, 1 SGD
	if opts.Optimizer == OptimizerSGD {
		optimizer = 1
	}
	// Transient is the default: measured in BenchmarkTrainStep (1.1B Q8_0,
	// T=256) it needs 2.4× less memory than the transposed copies and is
	// faster (less memory traffic than reading persistent F32 copies).
	if opts.Backward, err = ParseBackward(string(opts.Backward)); err != nil {
		return nil, fmt.Errorf("llama: trainer: %w", err)
	}
	var backward C.int32_t // train.h's codes
	switch opts.Backward {
	case BackwardOutProd:
		backward = 0
	case BackwardTransposed:
		backward = 1
	case BackwardTransposedQ8:
		backward = 2
	case BackwardTransient:
		backward = 3
	}
	// The reference context is only read for RoPE/YaRN parameters.
	ref, err := m.NewContext(ContextOptions{NCtx: 256, NBatch: 32, Threads: 1})
	if err != nil {
		return nil, fmt.Errorf("llama: trainer: %w", err)
	}
	p := C.fa_train_params{
		rank: C.int32_t(opts.Rank), alpha: C.float(opts.Alpha), targets: C.uint32_t(opts.Targets),
		full: C.bool(opts.Full), n_threads: C.int32_t(opts.Threads), optimizer: optimizer,
		weight_decay: C.float(opts.WeightDecay), beta1: C.float(opts.Beta1), beta2: C.float(opts.Beta2),
		eps: C.float(opts.Eps), seed: C.uint32_t(opts.Seed), f32_base: C.bool(opts.F32Base), f32_head: C.bool(opts.F32Head),
		backward: backward, lora_dropout: C.float(opts.LoRADropout), checkpoint: C.bool(opts.GradientCheckpointing),
		checkpoint_keep: C.int32_t(min(max(opts.CheckpointKeep, 1), 1<<30)),
		n_ctx_serve:     C.uint32_t(opts.ServeContext),
	}
	var cres *C.char
	var resumeTable string // the LongRoPE table the resumed adapter was trained on
	if opts.ResumeAdapter != "" {
		a, err := readAdapterFile(m, opts.ResumeAdapter)
		if err != nil {
			ref.Close()
			return nil, fmt.Errorf("llama: trainer: resume: %w", err)
		}
		if a.Rank != opts.Rank {
			ref.Close()
			return nil, fmt.Errorf("llama: trainer: resume: adapter %s has rank %d, not %d", opts.ResumeAdapter, a.Rank, opts.Rank)
		}
		resumeTable = a.RopeFactors
		cres = C.CString(opts.ResumeAdapter)
		defer C.free(unsafe.Pointer(cres))
	}
	m.mu.RLock()
	cm, err := m.handle()
	if err != nil {
		m.mu.RUnlock()
		ref.Close()
		return nil, err
	}
	var errBuf [errBufLen]C.char
	ct := C.fa_train_init(cm, ref.c, &p, cres, &errBuf[0], errBufLen)
	m.mu.RUnlock()
	if ct == nil {
		ref.Close()
		return nil, fmt.Errorf("llama: trainer for %s: %s", m.info.Path, cErr(errBuf[:]))
	}
	if table := C.GoString(C.fa_train_rope_factors(ct)); resumeTable != "" && table != resumeTable {
		C.fa_train_free(ct)
		ref.Close()
		return nil, fmt.Errorf("llama: trainer: resume: adapter %s was trained on the %s LongRoPE table, and ServeContext %d picks the %s one: continuing it would train another function",
			opts.ResumeAdapter, resumeTable, opts.ServeContext, table)
	}
	t := &Trainer{m: m, ref: ref, c: ct, opts: opts}
	t.cleanup = runtime.AddCleanup(t, func(r trainerResources) {
		C.fa_train_free(r.c)
		r.ref.Close()
	}, trainerResources{ct, ref, m})
	return t, nil
}

// defaultTargets is q,v, or for a fused Q/K/V projection (phi3) qkv, PEFT's
// default for Phi-3 (qkv_proj).
func defaultTargets(m *Model) Target {
	if m.file != nil {
		if _, ok := m.file.Tensor("blk.0.attn_qkv.weight"); ok {
			return TargetQKV
		}
	}
	return TargetsQV
}

// RopeFactors says which LongRoPE factor table the training graph uses,
// the one llama.cpp picks at TrainerOptions.ServeContext: "long" or "short";
// "" for a model without LongRoPE. Save records it in the adapter as
// fireact.rope_factors: an adapter is tuned to one table, so serving it at
// a context that picks the other is serving it on another function.
func (t *Trainer) RopeFactors() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return ""
	}
	return C.GoString(C.fa_train_rope_factors(t.c))
}

// Options returns the trainer's options with defaults filled in.
func (t *Trainer) Options() TrainerOptions { return t.opts }

// Step runs one optimizer step at learning rate lr and returns the loss before it.
func (t *Trainer) Step(b TrainBatch, lr float32) (StepResult, error) {
	return t.run(b, true, lr)
}

// StepAccumulate runs one optimizer step over several micro-batches (gradient
// accumulation): the step's examples need not fit in one graph. Each micro-batch's
// gradient is weighted by its share of the step's scored tokens, so the update is
// that of one batch holding all of them (up to float rounding), and the returned
// loss is the mean over all scored tokens. One micro-batch is exactly Step.
func (t *Trainer) StepAccumulate(bs []TrainBatch, lr float32) (StepResult, error) {
	if len(bs) == 0 {
		return StepResult{}, fmt.Errorf("llama: train step: no micro-batches")
	}
	if len(bs) == 1 {
		return t.Step(bs[0], lr)
	}
	total := 0
	for i, b := range bs {
		n := b.Scored()
		if n == 0 {
			return StepResult{}, fmt.Errorf("llama: train step: micro-batch %d has no scored tokens", i)
		}
		total += n
	}
	var sum float64
	for i, b := range bs {
		r, err := t.accumulate(b, float32(float64(b.Scored())/float64(total)), i == 0)
		if err != nil {
			return StepResult{}, fmt.Errorf("llama: train step: micro-batch %d of %d: %w", i+1, len(bs), err)
		}
		sum += r.Loss * float64(r.Scored)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return StepResult{}, ErrClosed
	}
	var errBuf [errBufLen]C.char
	t.m.mu.RLock()
	rc := C.fa_train_apply(t.c, C.float(lr), &errBuf[0], errBufLen)
	t.m.mu.RUnlock()
	if rc != 0 {
		return StepResult{}, fmt.Errorf("llama: train step: %s", cErr(errBuf[:]))
	}
	return StepResult{Loss: sum / float64(total), Scored: total}, nil
}

// Scored counts the tokens the trainer scores: targets that are not their
// sequence's first token (the rule of fa_train_step).
func (b TrainBatch) Scored() int {
	n, s := 0, 0
	for i, tg := range b.Target {
		first := i == 0
		for s < len(b.SeqStart) && b.SeqStart[s] <= i {
			first = first || b.SeqStart[s] == i
			s++
		}
		if tg && !first {
			n++
		}
	}
	return n
}

func (t *Trainer) accumulate(b TrainBatch, weight float32, first bool) (StepResult, error) {
	return t.call(b, func(ct *C.fa_trainer, tok *C.llama_token, tg *C.uint8_t, w *C.float, n C.int32_t, st *C.int32_t, ns C.int32_t,
		loss *C.float, scored *C.int32_t, e *C.char) C.int32_t {
		return C.fa_train_accumulate(ct, tok, tg, w, n, st, ns, C.float(weight), C.bool(first), loss, scored, e, errBufLen)
	})
}

// Eval returns the loss of a batch without changing anything.
func (t *Trainer) Eval(b TrainBatch) (StepResult, error) {
	return t.run(b, false, 0)
}

func (t *Trainer) run(b TrainBatch, train bool, lr float32) (StepResult, error) {
	return t.call(b, func(ct *C.fa_trainer, tok *C.llama_token, tg *C.uint8_t, w *C.float, n C.int32_t, st *C.int32_t, ns C.int32_t,
		loss *C.float, scored *C.int32_t, e *C.char) C.int32_t {
		return C.fa_train_step(ct, tok, tg, w, n, st, ns, C.bool(train), C.float(lr), loss, scored, e, errBufLen)
	})
}

// cBatch is a TrainBatch copied to C memory (cgo arguments stay in C memory,
// which keeps the seam simple to audit); free releases it.
type cBatch struct {
	tok     *C.llama_token
	tgt     *C.uint8_t
	w       *C.float // nil without weights
	st      *C.int32_t
	n, ns   C.int32_t
	targets int // tokens marked as targets
}

func newCBatch(b TrainBatch) (*cBatch, error) {
	n := len(b.Tokens)
	if n < 2 || len(b.Target) != n {
		return nil, fmt.Errorf("llama: train: %d tokens with %d target flags (want equal, >= 2)", n, len(b.Target))
	}
	if b.Weights != nil && len(b.Weights) != n {
		return nil, fmt.Errorf("llama: train: %d tokens with %d weights (want equal)", n, len(b.Weights))
	}
	starts := b.SeqStart
	if len(starts) == 0 {
		starts = []int{0}
	}
	c := &cBatch{n: C.int32_t(n), ns: C.int32_t(len(starts))}
	c.tok = (*C.llama_token)(C.malloc(C.size_t(n) * 4))
	c.tgt = (*C.uint8_t)(C.malloc(C.size_t(n)))
	c.st = (*C.int32_t)(C.malloc(C.size_t(len(starts)) * 4))
	toks := unsafe.Slice((*int32)(unsafe.Pointer(c.tok)), n)
	tg := unsafe.Slice((*uint8)(unsafe.Pointer(c.tgt)), n)
	for i, tk := range b.Tokens {
		toks[i] = int32(tk)
		tg[i] = 0
		if b.Target[i] {
			tg[i] = 1
			c.targets++
		}
	}
	st := unsafe.Slice((*int32)(unsafe.Pointer(c.st)), len(starts))
	for i, s := range starts {
		st[i] = int32(s)
	}
	if b.Weights != nil {
		c.w = (*C.float)(C.malloc(C.size_t(n) * 4))
		copy(unsafe.Slice((*float32)(unsafe.Pointer(c.w)), n), b.Weights)
	}
	return c, nil
}

func (c *cBatch) free() {
	C.free(unsafe.Pointer(c.tok))
	C.free(unsafe.Pointer(c.tgt))
	C.free(unsafe.Pointer(c.st))
	if c.w != nil {
		C.free(unsafe.Pointer(c.w))
	}
}

// call copies a batch to C memory and runs f (a step, an evaluation or an
// accumulation) on it.
func (t *Trainer) call(b TrainBatch, f func(*C.fa_trainer, *C.llama_token, *C.uint8_t, *C.float, C.int32_t, *C.int32_t, C.int32_t,
	*C.float, *C.int32_t, *C.char) C.int32_t) (StepResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var r StepResult
	if t.c == nil {
		return r, ErrClosed
	}
	cb, err := newCBatch(b)
	if err != nil {
		return r, err
	}
	defer cb.free()
	var loss C.float
	var scored C.int32_t
	var errBuf [errBufLen]C.char
	t.m.mu.RLock()
	rc := f(t.c, cb.tok, cb.tgt, cb.w, cb.n, cb.st, cb.ns, &loss, &scored, &errBuf[0])
	t.m.mu.RUnlock()
	if rc != 0 {
		return r, fmt.Errorf("llama: train step: %s", cErr(errBuf[:]))
	}
	r.Loss, r.Scored = float64(loss), int(scored)
	return r, nil
}

// TokenLogProbs returns log p of every scored token of b (in order; a
// sequence's first token is never scored) under the trainer's current
// weights, computed by the training graph's forward without dropout: the
// policy's log-probabilities that reward training compares across steps.
func (t *Trainer) TokenLogProbs(b TrainBatch) ([]float32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return nil, ErrClosed
	}
	b.Weights = nil
	cb, err := newCBatch(b)
	if err != nil {
		return nil, err
	}
	defer cb.free()
	out := (*C.float)(C.malloc(C.size_t(cb.targets+1) * 4))
	defer C.free(unsafe.Pointer(out))
	var errBuf [errBufLen]C.char
	t.m.mu.RLock()
	n := C.fa_train_token_logprobs(t.c, cb.tok, cb.tgt, cb.n, cb.st, cb.ns, out, C.int32_t(cb.targets+1), &errBuf[0], errBufLen)
	t.m.mu.RUnlock()
	if n < 0 {
		return nil, fmt.Errorf("llama: train logprobs: %s", cErr(errBuf[:]))
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(out)), int(n))...), nil
}

// Logits runs the training graph's forward pass over one sequence and returns the
// logits of every position (len(tokens) rows of the vocabulary size). It exists to
// check that training and inference compute the same function.
func (t *Trainer) Logits(tokens []Token) ([][]float32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return nil, ErrClosed
	}
	n, nv := len(tokens), t.m.info.NVocab
	if n == 0 {
		return nil, fmt.Errorf("llama: trainer logits: no tokens")
	}
	ctoks := (*C.llama_token)(C.malloc(C.size_t(n) * 4))
	defer C.free(unsafe.Pointer(ctoks))
	for i, tk := range tokens {
		unsafe.Slice((*int32)(unsafe.Pointer(ctoks)), n)[i] = int32(tk)
	}
	out := (*C.float)(C.malloc(C.size_t(n*nv) * 4))
	defer C.free(unsafe.Pointer(out))
	var errBuf [errBufLen]C.char
	t.m.mu.RLock()
	rc := C.fa_train_logits(t.c, ctoks, C.int32_t(n), out, &errBuf[0], errBufLen)
	t.m.mu.RUnlock()
	if rc != 0 {
		return nil, fmt.Errorf("llama: trainer logits: %s", cErr(errBuf[:]))
	}
	flat := unsafe.Slice((*float32)(unsafe.Pointer(out)), n*nv)
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = append([]float32(nil), flat[i*nv:(i+1)*nv]...)
	}
	return rows, nil
}

// Steps is the number of optimizer steps taken (restored by LoadState).
func (t *Trainer) Steps() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return 0
	}
	return int64(C.fa_train_n_steps(t.c))
}

// NumParams returns the number of trainable tensors and numbers.
func (t *Trainer) NumParams() (tensors int, elements int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return 0, 0
	}
	return int(C.fa_train_n_params(t.c)), int64(C.fa_train_n_param_elements(t.c))
}

// ParamNames lists the trainable tensors ("blk.0.attn_q.weight.lora_a", ...).
func (t *Trainer) ParamNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	if t.c == nil {
		return nil
	}
	for i := 0; i < int(C.fa_train_n_params(t.c)); i++ {
		out = append(out, C.GoString(C.fa_train_param_name(t.c, C.int32_t(i))))
	}
	return out
}

func (t *Trainer) paramIndex(name string) (int, int64, error) {
	for i := 0; i < int(C.fa_train_n_params(t.c)); i++ {
		if C.GoString(C.fa_train_param_name(t.c, C.int32_t(i))) == name {
			return i, int64(C.fa_train_param_size(t.c, C.int32_t(i))), nil
		}
	}
	return 0, 0, fmt.Errorf("llama: trainer has no parameter %q", name)
}

// Param returns a copy of a trainable tensor's values.
func (t *Trainer) Param(name string) ([]float32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return nil, ErrClosed
	}
	i, n, err := t.paramIndex(name)
	if err != nil {
		return nil, err
	}
	buf := (*C.float)(C.malloc(C.size_t(n) * 4))
	defer C.free(unsafe.Pointer(buf))
	C.fa_train_param_get(t.c, C.int32_t(i), buf, C.int64_t(n))
	out := make([]float32, n)
	copy(out, unsafe.Slice((*float32)(unsafe.Pointer(buf)), n))
	return out, nil
}

// SetParam overwrites a trainable tensor's values.
func (t *Trainer) SetParam(name string, vals []float32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return ErrClosed
	}
	i, n, err := t.paramIndex(name)
	if err != nil {
		return err
	}
	if int64(len(vals)) != n {
		return fmt.Errorf("llama: set %s: %d values, want %d", name, len(vals), n)
	}
	buf := (*C.float)(C.malloc(C.size_t(n) * 4))
	defer C.free(unsafe.Pointer(buf))
	copy(unsafe.Slice((*float32)(unsafe.Pointer(buf)), n), vals)
	C.fa_train_param_set(t.c, C.int32_t(i), buf, C.int64_t(n))
	return nil
}

// Save writes the adapter as a llama.cpp LoRA GGUF (loadable with LoadAdapter,
// llama.cpp's --lora and ollama's ADAPTER) with the options' AdapterMetadata,
// or the whole model for full training.
func (t *Trainer) Save(path string) error {
	keys, vals, n, free := cStringPairs(t.opts.AdapterMetadata)
	defer free()
	return t.cPath(path, func(cp *C.char, e *C.char) C.int32_t {
		return C.fa_train_save(t.c, cp, keys, vals, n, e, errBufLen)
	}, "save")
}

// cStringPairs copies kv into two C arrays of C strings (keys sorted, so the
// file's key order does not depend on map iteration); free releases all of it.
// An empty map gives NULL arrays.
func cStringPairs(kv map[string]string) (keys, vals **C.char, n C.int32_t, free func()) {
	if len(kv) == 0 {
		return nil, nil, 0, func() {}
	}
	names := make([]string, 0, len(kv))
	for k := range kv {
		names = append(names, k)
	}
	sort.Strings(names)
	ptrSize := C.size_t(unsafe.Sizeof((*C.char)(nil)))
	// C memory, not Go slices: cgo forbids passing Go memory that holds Go
	// pointers, and C strings are C pointers only in C-allocated arrays.
	keys = (**C.char)(C.malloc(C.size_t(len(names)) * ptrSize))
	vals = (**C.char)(C.malloc(C.size_t(len(names)) * ptrSize))
	ks := unsafe.Slice(keys, len(names))
	vs := unsafe.Slice(vals, len(names))
	for i, k := range names {
		ks[i], vs[i] = C.CString(k), C.CString(kv[k])
	}
	return keys, vals, C.int32_t(len(names)), func() {
		for i := range names {
			C.free(unsafe.Pointer(ks[i]))
			C.free(unsafe.Pointer(vs[i]))
		}
		C.free(unsafe.Pointer(keys))
		C.free(unsafe.Pointer(vals))
	}
}

// SaveState writes the trainable tensors, optimizer moments and step counter, so
// that training can resume exactly where it stopped.
func (t *Trainer) SaveState(path string) error {
	return t.cPath(path, func(cp *C.char, e *C.char) C.int32_t { return C.fa_train_save_state(t.c, cp, e, errBufLen) }, "save state")
}

// LoadState restores what SaveState wrote. A file from another configuration is
// refused and changes nothing.
func (t *Trainer) LoadState(path string) error {
	return t.cPath(path, func(cp *C.char, e *C.char) C.int32_t { return C.fa_train_load_state(t.c, cp, e, errBufLen) }, "load state")
}

func (t *Trainer) cPath(path string, f func(*C.char, *C.char) C.int32_t, what string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return ErrClosed
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var errBuf [errBufLen]C.char
	t.m.mu.RLock()
	rc := f(cp, &errBuf[0])
	t.m.mu.RUnlock()
	if rc != 0 {
		return fmt.Errorf("llama: trainer %s %s: %s", what, path, cErr(errBuf[:]))
	}
	return nil
}

// Close frees the trainer.
func (t *Trainer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.c == nil {
		return nil
	}
	t.cleanup.Stop()
	C.fa_train_free(t.c)
	t.c = nil
	return t.ref.Close()
}
