package llama

/*
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// SamplingOptions select how the next token is drawn. The zero value is greedy
// decoding (argmax) with no penalties.
type SamplingOptions struct {
	// Temperature <= 0 means greedy decoding; the other filters then only matter
	// through the penalties and the grammar.
	Temperature float32
	TopK        int     // keep the K most likely tokens (0: off)
	TopP        float32 // nucleus sampling (0 or 1: off)
	MinP        float32 // drop tokens below MinP * p(best) (0: off)
	// RepeatPenalty divides the logits of recently generated tokens (0 or 1: off);
	// RepeatLastN is how many recent tokens count (0: 64).
	RepeatPenalty    float32
	RepeatLastN      int
	FrequencyPenalty float32
	PresencePenalty  float32
	// Seed makes sampling reproducible; the same seed and inputs give the same tokens.
	Seed uint32
	// Grammar is a GBNF grammar that every generated token must keep satisfiable;
	// GrammarRoot names the start rule ("root" when empty).
	Grammar     string
	GrammarRoot string
}

// sampler owns a sampler of the glue: a grammar (if any), a llama.cpp chain of
// penalties and filters, and a reusable candidate buffer.
type sampler struct {
	c       *C.fa_sampler
	cleanup runtime.Cleanup
}

// samplerResources is what a sampler's cleanup frees, and the model whose
// vocabulary it reads (kept alive until then).
type samplerResources struct {
	c *C.fa_sampler
	m *Model
}

func (m *Model) newSampler(o SamplingOptions) (*sampler, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, err := m.handle(); err != nil {
		return nil, err
	}
	var p C.fa_sampler_params
	p.temp = C.float(o.Temperature)
	p.top_k = C.int32_t(o.TopK)
	p.top_p = 1
	if o.TopP > 0 && o.TopP < 1 {
		p.top_p = C.float(o.TopP)
	}
	p.min_p = C.float(o.MinP)
	p.repeat_penalty = 1
	if o.RepeatPenalty > 0 {
		p.repeat_penalty = C.float(o.RepeatPenalty)
	}
	p.repeat_last_n = 64
	if o.RepeatLastN > 0 {
		p.repeat_last_n = C.int32_t(o.RepeatLastN)
	}
	p.freq_penalty = C.float(o.FrequencyPenalty)
	p.presence_penalty = C.float(o.PresencePenalty)
	p.seed = C.uint32_t(o.Seed)
	if o.Grammar != "" {
		p.grammar = C.CString(o.Grammar)
		defer C.free(unsafe.Pointer(p.grammar))
		root := o.GrammarRoot
		if root == "" {
			root = "root"
		}
		p.grammar_root = C.CString(root)
		defer C.free(unsafe.Pointer(p.grammar_root))
	}
	var errBuf [errBufLen]C.char
	c := C.fa_sampler_new(m.vocab, &p, &errBuf[0], errBufLen)
	if c == nil {
		return nil, fmt.Errorf("llama: sampler: %s", cErr(errBuf[:]))
	}
	s := &sampler{c: c}
	s.cleanup = runtime.AddCleanup(s, func(r samplerResources) { C.fa_sampler_free(r.c) }, samplerResources{c, m})
	return s, nil
}

// sample draws the next token from batch row idx of ctx's last decode. Distinct
// samplers may sample rows of the same decode from different goroutines at once.
func (s *sampler) sample(ctx *Context, idx int) (Token, error) {
	var errBuf [errBufLen]C.char
	t := C.fa_sample(s.c, ctx.c, C.int32_t(idx), &errBuf[0], errBufLen)
	if t < 0 {
		return 0, fmt.Errorf("llama: sample: %s", cErr(errBuf[:]))
	}
	return Token(t), nil
}

func (s *sampler) free() {
	if s != nil && s.c != nil {
		s.cleanup.Stop()
		C.fa_sampler_free(s.c)
		s.c = nil
	}
}

// ValidateGrammar reports whether a GBNF grammar parses for this model's vocabulary.
func (m *Model) ValidateGrammar(grammar, root string) error {
	s, err := m.newSampler(SamplingOptions{Grammar: grammar, GrammarRoot: root})
	if err != nil {
		return err
	}
	s.free()
	return nil
}
