# fireact build. llama.cpp + ggml are compiled by cgo from the ollama Go module
# (pinned in go.mod); see third_party/llamacpp.go.
#
#   make demo    build bin/fireact and run the main job on the embedded default (offline)
#   make test    run the whole test suite (what .ci/run runs)
#   make bench   run the benchmarks
#   make env     print the exports that let plain `go test ./...` work in a shell:
#                eval "$$(make -s env)"
#   make cuda    build ggml's CUDA backend (needs nvcc + cmake; never needed by tests)

SHELL := /bin/bash
GO    ?= go

# CPU code generation. Measured (design/lora-training.md §4.1): the default cgo flags
# (-O2, no AVX) run llama.cpp about 4x slower than -O3 -march=native. MARCH=native is
# right for a binary that runs where it was built (dev machines, CI). For a binary
# that must run on other x86-64 machines use a portable level, e.g.
#   make build MARCH=x86-64-v3     (AVX2 + FMA + F16C: Haswell and later)
# Changing MARCH (or any CGO_*FLAGS) invalidates the cgo cache: the next build
# recompiles llama.cpp (~7 minutes on 2 cores).
MARCH ?= native
OPT   ?= -O3
# ggml-cpu.cpp references the AMX buffer type whenever the compiler targets AMX, but
# the cgo package does not compile ggml's amx/ sources, so the link would fail on
# AMX machines (Sapphire Rapids and later) with -march=native. Keep AMX off.
ifeq ($(shell uname -m),x86_64)
ARCH_FLAGS := -march=$(MARCH) -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
else
ARCH_FLAGS := -mcpu=$(MARCH)
endif

OLLAMA_DIR = $(shell $(GO) mod download github.com/ollama/ollama >/dev/null 2>&1; $(GO) list -m -f '{{.Dir}}' github.com/ollama/ollama)

CGO_ENV = CGO_ENABLED=1 \
  CGO_CFLAGS="$(OPT) $(ARCH_FLAGS)" \
  CGO_CXXFLAGS="$(OPT) $(ARCH_FLAGS)" \
  CGO_CPPFLAGS="-I$(OLLAMA_DIR)/llama/llama.cpp/include -I$(OLLAMA_DIR)/llama/llama.cpp/src -I$(OLLAMA_DIR)/ml/backend/ggml/ggml/include"

# sqlite_fts5 turns on FTS5 in github.com/mattn/go-sqlite3.
TAGS ?= sqlite_fts5
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

TEST_TIMEOUT ?= 40m
FUZZ_TIME ?= 15s
BENCH ?= .

.PHONY: all build test bench demo env cuda deps clean faults

all: build

build:
	$(CGO_ENV) $(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o bin/fireact ./cmd/fireact

# Test binaries are built in parallel, then run one package at a time: llama.cpp's
# worker threads spin while they wait, so two test binaries sharing 2 cores slow
# each other down many times over.
test: deps
	$(CGO_ENV) $(GO) vet -tags '$(TAGS)' ./...
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -count=1 -run '^$$' ./... >/dev/null
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -count=1 -p 1 -timeout $(TEST_TIMEOUT) ./...
	@# A short run of the fuzzers on top of their seed corpora (which ./... ran).
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzParseTurn$$' -fuzztime $(FUZZ_TIME) ./agent/turn
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZ_TIME) ./llama/gguf
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzReadSafetensors$$' -fuzztime $(FUZZ_TIME) ./llama/hf
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzReadTokenizer$$' -fuzztime $(FUZZ_TIME) ./llama/hf
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzReadPEFTConfig$$' -fuzztime $(FUZZ_TIME) ./llama/hf
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzLoaders$$' -fuzztime $(FUZZ_TIME) ./agent/tasks
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzReadFile$$' -fuzztime $(FUZZ_TIME) ./agent/results
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -fuzz '^FuzzReadFile$$' -fuzztime $(FUZZ_TIME) ./finetune/dataformat
	@# The fuzzers of packages that link llama.cpp (agent: FuzzOpenAIResponse,
	@# FuzzSerpAPIResponse) run their seed corpora above; fuzzing them would
	@# rebuild llama.cpp with coverage instrumentation (~15 minutes on 2 cores).

# The fault-injection suite (cmd/fireact TestFaults): FAULT_TRIALS seeded kill -9
# trials per command, plus disk-full, read-only and second-process trials; the
# figures table goes to faults.md. `make test` runs it with one trial each. Then
# the handle-cleanup test under the race detector.
FAULT_TRIALS ?= 10
FAULT_SEED ?= 1
faults: deps
	FIREACT_FAULT_TRIALS=$(FAULT_TRIALS) FIREACT_FAULT_SEED=$(FAULT_SEED) FIREACT_FAULT_REPORT=$(CURDIR)/faults.md \
	  $(CGO_ENV) $(GO) test -tags '$(TAGS)' -count=1 -timeout 20m -run '^TestFaults$$' -v ./cmd/fireact
	@# Handles dropped without Close under GC, with the race detector (its first
	@# build recompiles llama.cpp: about 5 minutes on 2 cores, then cached).
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -race -count=1 -run '^TestHandlesWithoutClose$$' ./llama
	@cat faults.md

bench:
	$(CGO_ENV) $(GO) test -tags '$(TAGS)' -run '^$$' -bench '$(BENCH)' -benchtime 1x -timeout 60m ./...

demo: build
	./bin/fireact demo --dir fireact-demo

env:
	@echo 'export $(subst ",\",$(CGO_ENV)) GOFLAGS="-tags=$(TAGS)"' | sed 's/\\"/"/g'

# ggml's CUDA backend, built with CMake from the same ollama module sources as the
# cgo build, into lib/fireact/ where bin/fireact looks for it at start (or set
# FIREACT_LIB_PATH). Needs nvcc and cmake; never needed by the tests.
CUDA_BUILD ?= build/cuda
CUDA_ARCHS ?= native
cuda:
	@command -v nvcc >/dev/null || { echo "make cuda: nvcc not found (install the CUDA toolkit)"; exit 1; }
	@command -v cmake >/dev/null || { echo "make cuda: cmake not found"; exit 1; }
	cmake -S $(OLLAMA_DIR) -B $(CUDA_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS)
	cmake --build $(CUDA_BUILD) --target ggml-cuda -j $$(nproc)
	mkdir -p lib/fireact
	cp -L $(CUDA_BUILD)/lib/ollama/libggml-cuda.so $(CUDA_BUILD)/lib/ollama/libggml-base.so* lib/fireact/
	@echo "CUDA backend in lib/fireact/; run bin/fireact with --gpu-layers -1"

# System packages the tests need (Debian). Installed by the project, never by hand.
DEB_PKGS ?= chromium
# node-llama-cpp: an independent llama.cpp (prebuilt binaries from npm, no
# compile) that llama/nodellama_test.go checks our models and adapters against.
# Installed into the git-ignored .deps/node when npm is present; without it the
# test skips and says why. --ignore-scripts: its postinstall may try to build
# llama.cpp from source, which the test never needs (it uses the prebuilt CPU
# binary, offline).
NODE_LLAMA_VERSION ?= 3.22.1
NODE_DEPS ?= .deps/node
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@if ! command -v npm >/dev/null; then \
	  echo "npm not found: skipping node-llama-cpp (the conformance test will skip)"; \
	elif ! grep -qs '"version": "$(NODE_LLAMA_VERSION)"' $(NODE_DEPS)/node_modules/node-llama-cpp/package.json; then \
	  echo "installing node-llama-cpp@$(NODE_LLAMA_VERSION) into $(NODE_DEPS)"; \
	  mkdir -p $(NODE_DEPS) && npm install --prefix $(NODE_DEPS) --no-audit --no-fund --ignore-scripts --loglevel=error node-llama-cpp@$(NODE_LLAMA_VERSION); \
	fi

clean:
	rm -rf bin build
