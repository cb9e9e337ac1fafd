package llama

/*
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/fireact/fireact/llama/gguf"
)

// ModelOptions control how a model is loaded. The zero value loads on the CPU with mmap.
type ModelOptions struct {
	// GPULayers is the number of layers to offload to a GPU (-1: all). Needs a GPU
	// backend (see LoadBackends); ignored otherwise.
	GPULayers int
	// NoMmap reads the weights into memory instead of mapping the file.
	NoMmap bool
	// Mlock keeps the weights resident.
	Mlock bool
	// VocabOnly loads only the tokenizer (fast; no inference possible).
	VocabOnly bool
}

// ModelInfo is a model's metadata, read once at load.
type ModelInfo struct {
	Path         string
	Arch         string // general.architecture, e.g. "llama"
	Name         string // general.name, may be empty
	Desc         string // llama.cpp's one-line description (type, size, quantization)
	NCtxTrain    int
	NEmbd        int
	NLayer       int
	NHead        int
	NHeadKV      int
	NVocab       int
	NParams      uint64
	SizeBytes    uint64
	BOS          Token // -1 when the vocab has none
	EOS          Token
	EOT          Token
	AddBOS       bool
	ChatTemplate string // tokenizer.chat_template, empty when absent
	VocabType    string // "spm", "bpe", ...
}

// Model is a loaded GGUF model. Its methods are safe for concurrent use; Close must
// not race with them.
type Model struct {
	mu      sync.RWMutex
	c       *C.struct_llama_model
	vocab   *C.struct_llama_vocab
	file    *gguf.File
	info    ModelInfo
	noMmap  bool // weights are in writable memory (needed for full training)
	cleanup runtime.Cleanup
}

// LoadModel validates the GGUF file at path and loads it. A malformed, truncated or
// foreign file gives an error naming the file and the problem; llama.cpp never sees it.
func LoadModel(path string, opts ModelOptions) (*Model, error) {
	f, err := gguf.Read(path)
	if err != nil {
		return nil, fmt.Errorf("llama: load model: %w", err)
	}
	if t, _ := f.String("general.type"); t == "adapter" {
		return nil, fmt.Errorf("llama: load model %s: the file is a LoRA adapter, not a model (use it with --lora)", path)
	}
	if f.Architecture() == "" {
		return nil, fmt.Errorf("llama: load model %s: no general.architecture key: not a llama.cpp model", path)
	}
	if len(f.Tensors) == 0 && !opts.VocabOnly {
		return nil, fmt.Errorf("llama: load model %s: the file has no tensors", path)
	}
	ensureInit()

	p := C.llama_model_default_params()
	p.n_gpu_layers = C.int32_t(opts.GPULayers)
	if opts.GPULayers < 0 {
		p.n_gpu_layers = 999
	}
	p.use_mmap = C.bool(!opts.NoMmap)
	p.use_mlock = C.bool(opts.Mlock)
	p.vocab_only = C.bool(opts.VocabOnly)
	// Repacked ("extra") buffer types support only MUL_MAT; training needs OUT_PROD on
	// the same weights, so keep the plain layout (the cgo build has no repack anyway).
	p.use_extra_bufts = false

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var errBuf [errBufLen]C.char
	cm := C.fa_model_load(cpath, p, &errBuf[0], errBufLen)
	if cm == nil {
		return nil, fmt.Errorf("llama: load model %s: %s", path, cErr(errBuf[:]))
	}
	m := &Model{c: cm, vocab: C.llama_model_get_vocab(cm), file: f, noMmap: opts.NoMmap}
	m.info = m.readInfo(path, opts.VocabOnly)
	m.cleanup = runtime.AddCleanup(m, func(c *C.struct_llama_model) { C.llama_model_free(c) }, cm)
	return m, nil
}

func (m *Model) readInfo(path string, vocabOnly bool) ModelInfo {
	vt := map[C.enum_llama_vocab_type]string{
		C.LLAMA_VOCAB_TYPE_NONE: "none", C.LLAMA_VOCAB_TYPE_SPM: "spm", C.LLAMA_VOCAB_TYPE_BPE: "bpe",
		C.LLAMA_VOCAB_TYPE_WPM: "wpm", C.LLAMA_VOCAB_TYPE_UGM: "ugm", C.LLAMA_VOCAB_TYPE_RWKV: "rwkv",
		C.LLAMA_VOCAB_TYPE_PLAMO2: "plamo2",
	}
	var desc [256]C.char
	C.llama_model_desc(m.c, &desc[0], C.size_t(len(desc)))
	info := ModelInfo{
		Path:      path,
		Arch:      m.file.Architecture(),
		Desc:      C.GoString(&desc[0]),
		NCtxTrain: int(C.llama_model_n_ctx_train(m.c)),
		NVocab:    int(C.llama_vocab_n_tokens(m.vocab)),
		BOS:       Token(C.llama_vocab_bos(m.vocab)),
		EOS:       Token(C.llama_vocab_eos(m.vocab)),
		EOT:       Token(C.llama_vocab_eot(m.vocab)),
		AddBOS:    bool(C.llama_vocab_get_add_bos(m.vocab)),
		VocabType: vt[C.llama_vocab_type(m.vocab)],
	}
	// A vocab-only model has no per-layer hyper-parameters: llama.cpp aborts when
	// asked for them, so read them from the GGUF header instead.
	if vocabOnly {
		arch := info.Arch
		u := func(k string) int { v, _ := m.file.Uint(arch + "." + k); return int(v) }
		info.NEmbd, info.NLayer, info.NHead = u("embedding_length"), u("block_count"), u("attention.head_count")
		info.NHeadKV = u("attention.head_count_kv")
		if info.NHeadKV == 0 {
			info.NHeadKV = info.NHead
		}
	} else {
		info.NEmbd = int(C.llama_model_n_embd(m.c))
		info.NLayer = int(C.llama_model_n_layer(m.c))
		info.NHead = int(C.llama_model_n_head(m.c))
		info.NHeadKV = int(C.llama_model_n_head_kv(m.c))
		info.NParams = uint64(C.llama_model_n_params(m.c))
		info.SizeBytes = uint64(C.llama_model_size(m.c))
	}
	info.Name, _ = m.file.String("general.name")
	if t := C.llama_model_chat_template(m.c, nil); t != nil {
		info.ChatTemplate = C.GoString(t)
	}
	return info
}

// Info returns the model's metadata.
func (m *Model) Info() ModelInfo { return m.info }

// File returns the validated GGUF header of the model file (metadata and tensor table).
func (m *Model) File() *gguf.File { return m.file }

// Meta returns a metadata value as llama.cpp formats it, and whether the key exists.
func (m *Model) Meta(key string) (string, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.c == nil {
		return "", false
	}
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	n := C.llama_model_meta_val_str(m.c, ckey, nil, 0)
	if n < 0 {
		return "", false
	}
	buf := make([]byte, int(n)+1)
	C.llama_model_meta_val_str(m.c, ckey, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return string(buf[:n]), true
}

// Close frees the model. Contexts, engines and adapters made from it must be closed
// first; using them afterwards is an error (ErrClosed), not a crash, as long as Close
// does not race with a call in flight.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.c == nil {
		return nil
	}
	m.cleanup.Stop()
	C.llama_model_free(m.c)
	m.c = nil
	m.vocab = nil
	return nil
}

// handle returns the C model under a read lock held by the caller, or ErrClosed.
func (m *Model) handle() (*C.struct_llama_model, error) {
	if m == nil || m.c == nil {
		return nil, ErrClosed
	}
	return m.c, nil
}
