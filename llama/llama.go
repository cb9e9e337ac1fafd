// Package llama is fireact's cgo binding over llama.cpp: models, tokenizers,
// contexts, a batched multi-sequence generation engine with shared-prefix reuse,
// sampling and grammars, LoRA adapters, scoring (log-probs, perplexity) and
// quantization. LoRA training lives in trainer.go.
//
// llama.cpp and ggml are compiled into the binary from the ollama Go module (see
// package third_party). Our own C/C++ glue is binding.h/binding.cpp; every call that
// can throw or abort goes through it, and every GGUF file is validated in Go (package
// llama/gguf) before llama.cpp opens it, because llama.cpp aborts the process on some
// malformed files.
//
// Building needs CGO_CPPFLAGS pointing at the module's headers; `make env` prints them.
//
// Ownership: Go types own their C handles and must be closed (Close is idempotent;
// a cleanup frees what was forgotten). Models are safe for concurrent use; a Context
// is not (use one per goroutine, or the Engine, which is).
package llama

/*
#cgo CXXFLAGS: -std=c++17
#cgo linux LDFLAGS: -lm
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	_ "github.com/fireact/fireact/third_party" // links llama.cpp + ggml
)

// Token is a vocabulary id.
type Token int32

// ErrClosed is returned by methods of a Model, Context, Adapter or Engine that was closed.
var ErrClosed = errors.New("llama: use of closed handle")

// errBufLen is the size of the C buffers that receive llama.cpp's error messages.
const errBufLen = 1024

// initOnce guards process-wide llama.cpp initialisation (llama_backend_init and the
// log hook are process-global in llama.cpp itself, so this is the one piece of
// package state we keep).
var initOnce sync.Once

func ensureInit() {
	initOnce.Do(func() {
		C.fa_init()
		setLogLevelFromEnv()
	})
}

// LogLevel selects how much of llama.cpp's own log reaches stderr.
type LogLevel int

// Log levels, from most to least verbose.
const (
	LogDebug LogLevel = C.GGML_LOG_LEVEL_DEBUG
	LogInfo  LogLevel = C.GGML_LOG_LEVEL_INFO
	LogWarn  LogLevel = C.GGML_LOG_LEVEL_WARN
	LogError LogLevel = C.GGML_LOG_LEVEL_ERROR
	LogNone  LogLevel = C.GGML_LOG_LEVEL_ERROR + 1
)

// SetLogLevel sets the minimum level of llama.cpp log lines printed to stderr
// (default LogNone, or FIREACT_LLAMA_LOG=debug|info|warn|error|none). The warnings
// and errors of a failed call are returned in its Go error whatever the level.
// llama.cpp's log is process-wide, so this setting is too.
func SetLogLevel(l LogLevel) {
	ensureInit()
	C.fa_log_set_level(C.int(l))
}

func setLogLevelFromEnv() {
	lvl := LogNone
	switch strings.ToLower(os.Getenv("FIREACT_LLAMA_LOG")) {
	case "error":
		lvl = LogError
	case "debug":
		lvl = LogDebug
	case "info":
		lvl = LogInfo
	case "warn", "warning":
		lvl = LogWarn
	case "none", "off":
		lvl = LogNone
	}
	C.fa_log_set_level(C.int(lvl))
}

// LoadBackends loads dynamically built ggml backends (for example libggml-cuda.so
// from `make cuda`) from dir and returns how many GPU devices are available after.
// The CPU backend is always compiled in and needs no loading.
func LoadBackends(dir string) (int, error) {
	ensureInit()
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	n := int(C.fa_load_backends(cdir))
	if n < 0 {
		return 0, fmt.Errorf("llama: load backends from %s failed", dir)
	}
	return n, nil
}

// SupportsGPUOffload reports whether a GPU backend is available for offloading layers.
func SupportsGPUOffload() bool {
	ensureInit()
	return bool(C.llama_supports_gpu_offload())
}

// SystemInfo returns llama.cpp's description of the CPU features it was built with.
func SystemInfo() string {
	ensureInit()
	return C.GoString(C.llama_print_system_info())
}

// cErr turns a C error buffer into a Go string.
func cErr(buf []C.char) string {
	return C.GoString(&buf[0])
}
