// Package thirdparty links llama.cpp and ggml into the fireact binary.
//
// The sources are not copied into this repository. They come from the Go module
// github.com/ollama/ollama, pinned in go.mod to v0.17.4, which vendors llama.cpp at
// upstream commit ec98e2002 together with its ggml. Blank-importing the two cgo
// packages below makes the Go toolchain compile and link them (CPU backend only;
// GPU backends are CMake-built shared libraries loaded at run time, see the
// Makefile's cuda target).
//
// We deliberately do not import github.com/ollama/ollama/llama itself: its module
// zip lacks llama.cpp's vendor/ headers (nlohmann, stb, miniaudio) and it fails to
// build. Our own cgo code in package llama finds llama.h and the ggml headers through
// CGO_CPPFLAGS, which the Makefile derives from `go list -m -f '{{.Dir}}'`.
//
// Bumping the pin: the LoRA training glue in package llama includes llama.cpp's
// internal headers (llama-model.h, llama-context.h, llama-adapter.h) and mirrors its
// llama-family forward pass, so a new version must pass the llama package's gradient
// and logit-equivalence tests before it lands.
package thirdparty

import (
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)
