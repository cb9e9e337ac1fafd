package llama

/*
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"
)

// KVCacheType is the element type of the KV cache: "f16" (default), "f32", "bf16",
// "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl". Quantized V caches need flash
// attention in llama.cpp.
type KVCacheType string

var kvTypes = map[KVCacheType]C.enum_ggml_type{
	"": C.GGML_TYPE_F16, "f16": C.GGML_TYPE_F16, "f32": C.GGML_TYPE_F32, "bf16": C.GGML_TYPE_BF16,
	"q8_0": C.GGML_TYPE_Q8_0, "q4_0": C.GGML_TYPE_Q4_0, "q4_1": C.GGML_TYPE_Q4_1,
	"q5_0": C.GGML_TYPE_Q5_0, "q5_1": C.GGML_TYPE_Q5_1, "iq4_nl": C.GGML_TYPE_IQ4_NL,
}

// FlashAttn selects flash attention.
type FlashAttn int

// Flash-attention settings; the zero value lets llama.cpp decide.
const (
	FlashAttnAuto FlashAttn = iota
	FlashAttnOff
	FlashAttnOn
)

// ContextOptions configure a context. Zero values take the defaults noted.
type ContextOptions struct {
	NCtx    int // KV cache cells (0: the model's training context); llama.cpp rounds up to 256
	NBatch  int // max tokens per Decode call (0: 512)
	NUBatch int // max tokens per compute graph (0: NBatch)
	NSeqMax int // distinct sequences (0: 1)
	// KVUnified puts all sequences in one KV buffer of NCtx cells, so cells can be
	// shared between sequences (a common prompt prefix stored once). Without it each
	// sequence gets NCtx/NSeqMax cells of its own.
	KVUnified    bool
	Threads      int // generation threads (0: all CPUs)
	ThreadsBatch int // prompt threads (0: Threads)
	TypeK        KVCacheType
	TypeV        KVCacheType
	FlashAttn    FlashAttn
	// GraphReuse lets llama.cpp reuse the previous compute graph when the batch
	// shape repeats. llama.cpp's reuse test compares the adapter map by pointer, so
	// after an adapter change it would keep running the old graph and silently ignore
	// the change; with GraphReuse on, adapters can only be changed before the first
	// Decode. Off by default.
	GraphReuse bool
}

// Context is an inference context: a KV cache plus compute buffers. It is not safe
// for concurrent use.
type Context struct {
	m        *Model
	c        *C.struct_llama_context
	opts     ContextOptions
	nCtx     int
	nCtxSeq  int
	nBatch   int
	nSeqMax  int
	nVocab   int
	batch    C.struct_llama_batch
	decoded  bool
	adapters map[*Adapter]float32
	cleanup  runtime.Cleanup
}

// Errors returned by Decode.
var (
	// ErrNoKVSlot means the KV cache has no room for the batch; free sequences
	// (SeqRemove) or use a larger NCtx.
	ErrNoKVSlot = errors.New("llama: decode: no KV cache slot for the batch (context full)")
	// ErrAborted means the decode was aborted.
	ErrAborted = errors.New("llama: decode: aborted")
)

type ctxResources struct {
	c     *C.struct_llama_context
	batch C.struct_llama_batch
	// m keeps the model reachable until this cleanup has run: when a model
	// and its context become unreachable together, their cleanups may run in
	// any order, and llama_free must not run on a context whose model is gone.
	m *Model
}

// NewContext creates a context for m.
func (m *Model) NewContext(opts ContextOptions) (*Context, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	cm, err := m.handle()
	if err != nil {
		return nil, err
	}
	if opts.NCtx < 0 || opts.NBatch < 0 || opts.NUBatch < 0 || opts.NSeqMax < 0 {
		return nil, fmt.Errorf("llama: new context: negative size in %+v", opts)
	}
	p := C.llama_context_default_params()
	p.n_ctx = C.uint32_t(opts.NCtx)
	if opts.NBatch == 0 {
		opts.NBatch = 512
	}
	if opts.NUBatch == 0 || opts.NUBatch > opts.NBatch {
		opts.NUBatch = opts.NBatch
	}
	if opts.NSeqMax == 0 {
		opts.NSeqMax = 1
	}
	if opts.NSeqMax > 256 {
		return nil, fmt.Errorf("llama: new context: NSeqMax %d exceeds llama.cpp's limit of 256", opts.NSeqMax)
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	if opts.ThreadsBatch <= 0 {
		opts.ThreadsBatch = opts.Threads
	}
	tk, ok := kvTypes[opts.TypeK]
	if !ok {
		return nil, fmt.Errorf("llama: new context: unknown KV cache type %q", opts.TypeK)
	}
	tv, ok := kvTypes[opts.TypeV]
	if !ok {
		return nil, fmt.Errorf("llama: new context: unknown KV cache type %q", opts.TypeV)
	}
	p.n_batch = C.uint32_t(opts.NBatch)
	p.n_ubatch = C.uint32_t(opts.NUBatch)
	p.n_seq_max = C.uint32_t(opts.NSeqMax)
	p.kv_unified = C.bool(opts.KVUnified)
	p.n_threads = C.int32_t(opts.Threads)
	p.n_threads_batch = C.int32_t(opts.ThreadsBatch)
	p.type_k = tk
	p.type_v = tv
	switch opts.FlashAttn {
	case FlashAttnOn:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	case FlashAttnOff:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	default:
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_AUTO
	}
	p.no_perf = false

	var errBuf [errBufLen]C.char
	cc := C.fa_context_new(cm, p, C.bool(opts.GraphReuse), &errBuf[0], errBufLen)
	if cc == nil {
		return nil, fmt.Errorf("llama: new context for %s: %s", m.info.Path, cErr(errBuf[:]))
	}
	c := &Context{
		m:        m,
		c:        cc,
		opts:     opts,
		nCtx:     int(C.llama_n_ctx(cc)),
		nCtxSeq:  int(C.llama_n_ctx_seq(cc)),
		nBatch:   int(C.llama_n_batch(cc)),
		nSeqMax:  int(C.llama_n_seq_max(cc)),
		nVocab:   m.info.NVocab,
		adapters: map[*Adapter]float32{},
	}
	c.batch = C.llama_batch_init(C.int32_t(c.nBatch), 0, C.int32_t(c.nSeqMax))
	c.cleanup = runtime.AddCleanup(c, func(r ctxResources) {
		C.llama_batch_free(r.batch)
		C.llama_free(r.c)
	}, ctxResources{cc, c.batch, m})
	return c, nil
}

// Model returns the model the context was made from.
func (c *Context) Model() *Model { return c.m }

// NCtx is the number of KV cache cells.
func (c *Context) NCtx() int { return c.nCtx }

// NCtxSeq is the number of KV cells one sequence can use: NCtx with a unified
// cache, NCtx/NSeqMax without.
func (c *Context) NCtxSeq() int { return c.nCtxSeq }

// NBatch is the maximum number of tokens per Decode.
func (c *Context) NBatch() int { return c.nBatch }

// NSeqMax is the number of sequences the context holds.
func (c *Context) NSeqMax() int { return c.nSeqMax }

// Close frees the context. Idempotent.
func (c *Context) Close() error {
	if c.c == nil {
		return nil
	}
	for a := range c.adapters {
		a.detach()
	}
	c.adapters = nil
	c.cleanup.Stop()
	C.llama_batch_free(c.batch)
	C.llama_free(c.c)
	c.c = nil
	return nil
}

// Batch is a set of tokens to decode together: each token has a position, the
// sequences it belongs to, and whether its logits are wanted.
type Batch struct {
	Tokens []Token
	Pos    []int32
	Seqs   [][]int32
	Logits []bool
}

// Add appends a token of one sequence.
func (b *Batch) Add(t Token, pos, seq int, logits bool) {
	b.Tokens = append(b.Tokens, t)
	b.Pos = append(b.Pos, int32(pos))
	b.Seqs = append(b.Seqs, []int32{int32(seq)})
	b.Logits = append(b.Logits, logits)
}

// Len is the number of tokens in the batch.
func (b *Batch) Len() int { return len(b.Tokens) }

// Reset empties the batch, keeping its storage.
func (b *Batch) Reset() {
	b.Tokens, b.Pos, b.Seqs, b.Logits = b.Tokens[:0], b.Pos[:0], b.Seqs[:0], b.Logits[:0]
}

// Decode runs the model over the batch, extending the KV cache of each token's
// sequences. Logits of rows marked in b.Logits are then available by row index.
func (c *Context) Decode(b *Batch) error {
	if c.c == nil {
		return ErrClosed
	}
	n := b.Len()
	if n == 0 {
		return fmt.Errorf("llama: decode: empty batch")
	}
	if n > c.nBatch {
		return fmt.Errorf("llama: decode: batch of %d tokens exceeds NBatch %d", n, c.nBatch)
	}
	if len(b.Pos) != n || len(b.Seqs) != n || len(b.Logits) != n {
		return fmt.Errorf("llama: decode: batch slices have different lengths")
	}
	tok := unsafe.Slice((*int32)(unsafe.Pointer(c.batch.token)), n)
	pos := unsafe.Slice((*int32)(unsafe.Pointer(c.batch.pos)), n)
	nseq := unsafe.Slice((*int32)(unsafe.Pointer(c.batch.n_seq_id)), n)
	seqp := unsafe.Slice(c.batch.seq_id, n)
	lg := unsafe.Slice((*int8)(unsafe.Pointer(c.batch.logits)), n)
	for i := 0; i < n; i++ {
		t := b.Tokens[i]
		if int(t) < 0 || int(t) >= c.nVocab {
			return fmt.Errorf("llama: decode: token %d at row %d is outside the vocabulary (%d)", t, i, c.nVocab)
		}
		seqs := b.Seqs[i]
		if len(seqs) == 0 || len(seqs) > c.nSeqMax {
			return fmt.Errorf("llama: decode: row %d belongs to %d sequences (want 1..%d)", i, len(seqs), c.nSeqMax)
		}
		if b.Pos[i] < 0 {
			return fmt.Errorf("llama: decode: row %d has negative position %d", i, b.Pos[i])
		}
		tok[i] = int32(t)
		pos[i] = b.Pos[i]
		nseq[i] = int32(len(seqs))
		ids := unsafe.Slice((*int32)(unsafe.Pointer(seqp[i])), len(seqs))
		for j, s := range seqs {
			if s < 0 || int(s) >= c.nSeqMax {
				return fmt.Errorf("llama: decode: row %d: sequence id %d outside 0..%d", i, s, c.nSeqMax-1)
			}
			ids[j] = s
		}
		lg[i] = 0
		if b.Logits[i] {
			lg[i] = 1
		}
	}
	c.batch.n_tokens = C.int32_t(n)
	var errBuf [errBufLen]C.char
	rc := C.fa_decode(c.c, c.batch, &errBuf[0], errBufLen)
	c.decoded = true
	switch {
	case rc == 0:
		return nil
	case rc == 1:
		return ErrNoKVSlot
	case rc == 2:
		return ErrAborted
	default:
		return fmt.Errorf("llama: decode: status %d: %s", int(rc), cErr(errBuf[:]))
	}
}

// Logits returns a copy of the logits of batch row i of the last Decode.
func (c *Context) Logits(i int) ([]float32, error) {
	if c.c == nil {
		return nil, ErrClosed
	}
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("llama: logits: row %d has no logits", i)
	}
	out := make([]float32, c.nVocab)
	copy(out, unsafe.Slice((*float32)(unsafe.Pointer(p)), c.nVocab))
	return out, nil
}

// settleLogits makes llama.cpp apply any pending reordering of the output rows, so
// that later reads of the logits only read (and may run concurrently).
func (c *Context) settleLogits() {
	if c.c != nil {
		C.llama_get_logits(c.c)
	}
}

// Argmax returns the most likely next token at batch row i of the last Decode.
func (c *Context) Argmax(i int) (Token, error) {
	if c.c == nil {
		return 0, ErrClosed
	}
	t := C.fa_argmax(c.c, C.int32_t(i))
	if t < 0 {
		return 0, fmt.Errorf("llama: argmax: row %d has no logits", i)
	}
	return Token(t), nil
}

// TokenLogProbs returns, for each (row, target) pair of the last Decode, log
// p(target | prefix) and whether target was the most likely token.
func (c *Context) TokenLogProbs(rows []int32, targets []Token) ([]float32, []bool, error) {
	if c.c == nil {
		return nil, nil, ErrClosed
	}
	if len(rows) != len(targets) {
		return nil, nil, fmt.Errorf("llama: logprobs: %d rows but %d targets", len(rows), len(targets))
	}
	n := len(rows)
	if n == 0 {
		return nil, nil, nil
	}
	// C memory for the arrays: the C side reads them after Go could move nothing,
	// but keeping all cgo arguments in C memory keeps the seam simple to audit.
	cidx := (*C.int32_t)(C.malloc(C.size_t(n) * 4))
	ctgt := (*C.llama_token)(C.malloc(C.size_t(n) * 4))
	clp := (*C.float)(C.malloc(C.size_t(n) * 4))
	cam := (*C.uint8_t)(C.malloc(C.size_t(n)))
	defer C.free(unsafe.Pointer(cidx))
	defer C.free(unsafe.Pointer(ctgt))
	defer C.free(unsafe.Pointer(clp))
	defer C.free(unsafe.Pointer(cam))
	copy(unsafe.Slice((*int32)(unsafe.Pointer(cidx)), n), rows)
	tg := unsafe.Slice((*int32)(unsafe.Pointer(ctgt)), n)
	for i, t := range targets {
		tg[i] = int32(t)
	}
	if C.fa_token_logprobs(c.c, cidx, ctgt, C.int32_t(n), clp, cam) != 0 {
		return nil, nil, fmt.Errorf("llama: logprobs: a row has no logits or a target is outside the vocabulary")
	}
	lp := make([]float32, n)
	copy(lp, unsafe.Slice((*float32)(unsafe.Pointer(clp)), n))
	am := make([]bool, n)
	for i, v := range unsafe.Slice((*uint8)(unsafe.Pointer(cam)), n) {
		am[i] = v != 0
	}
	return lp, am, nil
}

// ClearKV empties the KV cache of every sequence.
func (c *Context) ClearKV() {
	if c.c == nil {
		return
	}
	C.llama_memory_clear(C.llama_get_memory(c.c), true)
}

// SeqRemove removes the cells of sequence seq at positions [p0, p1) (p1 < 0: to the
// end; seq < 0: every sequence). It reports false when the removal is not possible
// (a partial removal on a recurrent model).
func (c *Context) SeqRemove(seq, p0, p1 int) bool {
	if c.c == nil {
		return false
	}
	return bool(C.llama_memory_seq_rm(C.llama_get_memory(c.c), C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1)))
}

// SeqCopy makes the cells of src at positions [p0, p1) also belong to dst. With a
// unified KV cache this shares the cells (no copy, no re-decoding).
func (c *Context) SeqCopy(src, dst, p0, p1 int) {
	if c.c == nil {
		return
	}
	C.llama_memory_seq_cp(C.llama_get_memory(c.c), C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(p0), C.llama_pos(p1))
}

// SeqKeep removes every sequence but seq.
func (c *Context) SeqKeep(seq int) {
	if c.c == nil {
		return
	}
	C.llama_memory_seq_keep(C.llama_get_memory(c.c), C.llama_seq_id(seq))
}

// SeqPosMax returns the largest position stored for seq, or -1 when it is empty.
func (c *Context) SeqPosMax(seq int) int {
	if c.c == nil {
		return -1
	}
	return int(C.llama_memory_seq_pos_max(C.llama_get_memory(c.c), C.llama_seq_id(seq)))
}

// PerfTokens returns llama.cpp's count of prompt (multi-token batch) and
// generated (single-token batch) tokens decoded since the context was made or
// the counters were reset.
func (c *Context) PerfTokens() (prompt, gen int) {
	if c.c == nil {
		return 0, 0
	}
	d := C.llama_perf_context(c.c)
	return int(d.n_p_eval), int(d.n_eval)
}

// SetAdapter attaches a LoRA adapter at the given scale (1 = as trained), replacing
// its scale if already attached. The change applies from the next Decode.
func (c *Context) SetAdapter(a *Adapter, scale float32) error {
	if c.c == nil {
		return ErrClosed
	}
	if err := c.adapterChangeAllowed(); err != nil {
		return err
	}
	ca, err := a.handle(c.m)
	if err != nil {
		return err
	}
	if rc := C.llama_set_adapter_lora(c.c, ca, C.float(scale)); rc != 0 {
		return fmt.Errorf("llama: set adapter %s: status %d", a.Path(), int(rc))
	}
	if _, ok := c.adapters[a]; !ok {
		a.attach()
	}
	c.adapters[a] = scale
	return nil
}

// RemoveAdapter detaches an adapter; it is a no-op if it was not attached.
func (c *Context) RemoveAdapter(a *Adapter) error {
	if c.c == nil {
		return ErrClosed
	}
	if _, ok := c.adapters[a]; !ok {
		return nil
	}
	if err := c.adapterChangeAllowed(); err != nil {
		return err
	}
	if a.c != nil {
		C.llama_rm_adapter_lora(c.c, a.c)
	}
	delete(c.adapters, a)
	a.detach()
	return nil
}

// ClearAdapters detaches every adapter.
func (c *Context) ClearAdapters() error {
	if c.c == nil {
		return ErrClosed
	}
	if len(c.adapters) == 0 {
		return nil
	}
	if err := c.adapterChangeAllowed(); err != nil {
		return err
	}
	C.llama_clear_adapter_lora(c.c)
	for a := range c.adapters {
		a.detach()
	}
	clear(c.adapters)
	return nil
}

// Adapters returns the attached adapters and their scales.
func (c *Context) Adapters() map[*Adapter]float32 {
	out := make(map[*Adapter]float32, len(c.adapters))
	for a, s := range c.adapters {
		out[a] = s
	}
	return out
}

func (c *Context) adapterChangeAllowed() error {
	if c.opts.GraphReuse && c.decoded {
		return fmt.Errorf("llama: adapters of a context with GraphReuse cannot change after its first Decode (llama.cpp would reuse the old graph)")
	}
	return nil
}
