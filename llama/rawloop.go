package llama

/*
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// RawGreedy decodes prompt and then n greedy tokens for one sequence in a plain C
// loop (no Go per token). It exists as the baseline of the binding-overhead
// benchmark: the engine's throughput divided by this one's is the overhead ratio.
// It clears the context's KV cache.
func (c *Context) RawGreedy(prompt []Token, n int) ([]Token, time.Duration, error) {
	if c.c == nil {
		return nil, 0, ErrClosed
	}
	if len(prompt) == 0 || len(prompt) > c.nBatch || len(prompt)+n > c.nCtx {
		return nil, 0, fmt.Errorf("llama: raw greedy: prompt %d + %d tokens do not fit (batch %d, ctx %d)", len(prompt), n, c.nBatch, c.nCtx)
	}
	cp := (*C.llama_token)(C.malloc(C.size_t(len(prompt)) * 4))
	defer C.free(unsafe.Pointer(cp))
	src := unsafe.Slice((*int32)(unsafe.Pointer(cp)), len(prompt))
	for i, t := range prompt {
		src[i] = int32(t)
	}
	out := (*C.llama_token)(C.malloc(C.size_t(max(n, 1)) * 4))
	defer C.free(unsafe.Pointer(out))
	sec := C.fa_bench_greedy(c.c, cp, C.int32_t(len(prompt)), C.int32_t(n), out)
	if sec < 0 {
		return nil, 0, fmt.Errorf("llama: raw greedy: decode failed")
	}
	toks := make([]Token, n)
	for i, t := range unsafe.Slice((*int32)(unsafe.Pointer(out)), n) {
		toks[i] = Token(t)
	}
	c.ClearKV()
	return toks, time.Duration(float64(sec) * float64(time.Second)), nil
}
