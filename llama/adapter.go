package llama

/*
#include <stdlib.h>
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/fireact/fireact/llama/gguf"
)

// Adapter is a LoRA adapter loaded for one model (llama.cpp's LoRA GGUF format).
// Attach it to contexts with Context.SetAdapter or to engine requests by name.
type Adapter struct {
	mu       sync.Mutex
	m        *Model
	c        *C.struct_llama_adapter_lora
	path     string
	alpha    float32
	rank     int
	targets  []string
	attached int
	cleanup  runtime.Cleanup
}

// adapterResources is what an adapter's cleanup frees, and the model it needs.
type adapterResources struct {
	c *C.struct_llama_adapter_lora
	m *Model
}

// LoadAdapter validates the adapter file against the model (architecture, tensor
// names, shapes, rank) and loads it.
func (m *Model) LoadAdapter(path string) (*Adapter, error) {
	f, err := gguf.Read(path)
	if err != nil {
		return nil, fmt.Errorf("llama: load adapter: %w", err)
	}
	info, err := ValidateAdapter(m.file, f)
	if err != nil {
		return nil, fmt.Errorf("llama: load adapter %s: %w", path, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	cm, err := m.handle()
	if err != nil {
		return nil, err
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var errBuf [errBufLen]C.char
	ca := C.fa_adapter_load(cm, cpath, &errBuf[0], errBufLen)
	if ca == nil {
		return nil, fmt.Errorf("llama: load adapter %s: %s", path, cErr(errBuf[:]))
	}
	a := &Adapter{m: m, c: ca, path: path, alpha: info.Alpha, rank: info.Rank, targets: info.Targets}
	// The cleanup's argument holds the model so that an unreachable adapter
	// is freed before its model (see ctxResources).
	a.cleanup = runtime.AddCleanup(a, func(r adapterResources) { C.llama_adapter_lora_free(r.c) }, adapterResources{ca, m})
	return a, nil
}

// readAdapterFile validates an adapter file against m without loading it.
func readAdapterFile(m *Model, path string) (AdapterInfo, error) {
	f, err := gguf.Read(path)
	if err != nil {
		return AdapterInfo{}, err
	}
	info, err := ValidateAdapter(m.file, f)
	if err != nil {
		return info, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// ReadAdapterInfo reads the base model and adapter files at the two paths and
// validates the adapter against the base (ValidateAdapter) without loading
// either into llama.cpp: what a trainer continuing an adapter needs to know
// (its rank, alpha and targets) before it builds anything.
func ReadAdapterInfo(basePath, adapterPath string) (AdapterInfo, error) {
	base, err := gguf.Read(basePath)
	if err != nil {
		return AdapterInfo{}, fmt.Errorf("base model: %w", err)
	}
	ad, err := gguf.Read(adapterPath)
	if err != nil {
		return AdapterInfo{}, err
	}
	info, err := ValidateAdapter(base, ad)
	if err != nil {
		return info, fmt.Errorf("%s for %s: %w", adapterPath, basePath, err)
	}
	return info, nil
}

// AdapterInfo describes a validated LoRA adapter file.
type AdapterInfo struct {
	Arch    string
	Alpha   float32 // adapter.lora.alpha; 0 means "scale as given"
	Rank    int
	Targets []string // base tensor names, sorted
	// RopeFactors is the LongRoPE table a fireact trainer trained it on
	// (fireact.rope_factors: "long" or "short"; "" when not recorded).
	RopeFactors string
}

// ValidateAdapter checks an adapter file against a base model file the way
// llama.cpp's loader does (llama-adapter.cpp), so that a mismatch is a clear error
// here instead of an exception or abort there.
func ValidateAdapter(base, adapter *gguf.File) (AdapterInfo, error) {
	var info AdapterInfo
	if t, _ := adapter.String("general.type"); t != "adapter" {
		return info, fmt.Errorf("general.type is %q, want \"adapter\" (is this a model file?)", t)
	}
	if t, _ := adapter.String("adapter.type"); t != "lora" {
		return info, fmt.Errorf("adapter.type is %q, want \"lora\"", t)
	}
	info.Arch = adapter.Architecture()
	if info.Arch != base.Architecture() {
		return info, fmt.Errorf("adapter architecture %q does not match the model's %q", info.Arch, base.Architecture())
	}
	if a, ok := adapter.Float("adapter.lora.alpha"); ok {
		info.Alpha = float32(a)
	}
	info.RopeFactors, _ = adapter.String("fireact.rope_factors")
	type pair struct{ a, b *gguf.TensorInfo }
	pairs := map[string]*pair{}
	for i := range adapter.Tensors {
		t := &adapter.Tensors[i]
		var baseName string
		var isA bool
		switch {
		case strings.HasSuffix(t.Name, ".lora_a"):
			baseName, isA = strings.TrimSuffix(t.Name, ".lora_a"), true
		case strings.HasSuffix(t.Name, ".lora_b"):
			baseName = strings.TrimSuffix(t.Name, ".lora_b")
		case strings.HasSuffix(t.Name, "_norm.weight"):
			continue // llama.cpp ignores norm tensors in adapters
		default:
			return info, fmt.Errorf("tensor %q: name must end in .lora_a or .lora_b", t.Name)
		}
		p := pairs[baseName]
		if p == nil {
			p = &pair{}
			pairs[baseName] = p
		}
		if isA {
			p.a = t
		} else {
			p.b = t
		}
	}
	if len(pairs) == 0 {
		return info, fmt.Errorf("the adapter has no LoRA tensors")
	}
	for name, p := range pairs {
		if p.a == nil || p.b == nil {
			return info, fmt.Errorf("tensor %q has only one of lora_a/lora_b", name)
		}
		bt, ok := base.Tensor(name)
		if !ok {
			return info, fmt.Errorf("tensor %q: the model has no tensor of that name", name)
		}
		if len(p.a.Shape) != 2 || len(p.b.Shape) != 2 || len(bt.Shape) < 2 {
			return info, fmt.Errorf("tensor %q: lora_a, lora_b and the base must be 2-D", name)
		}
		if name == "token_embd.weight" {
			// llama.cpp stores the embedding adapter transposed (llama-adapter.cpp).
			if p.b.Shape[1] != bt.Shape[0] || p.a.Shape[1] != bt.Shape[1] || p.a.Shape[0] != p.b.Shape[0] {
				return info, fmt.Errorf("tensor %q: embedding adapter shapes %v/%v do not fit the base %v", name, p.a.Shape, p.b.Shape, bt.Shape)
			}
		} else {
			if p.a.Shape[0] != bt.Shape[0] {
				return info, fmt.Errorf("tensor %q: lora_a has %d inputs, the base has %d", name, p.a.Shape[0], bt.Shape[0])
			}
			if p.b.Shape[1] != bt.Shape[1] {
				return info, fmt.Errorf("tensor %q: lora_b has %d outputs, the base has %d", name, p.b.Shape[1], bt.Shape[1])
			}
			if p.a.Shape[1] != p.b.Shape[0] {
				return info, fmt.Errorf("tensor %q: lora_a rank %d differs from lora_b rank %d", name, p.a.Shape[1], p.b.Shape[0])
			}
		}
		r := int(p.a.Shape[1])
		if name == "token_embd.weight" {
			r = int(p.a.Shape[0])
		}
		if info.Rank == 0 {
			info.Rank = r
		}
		info.Targets = append(info.Targets, name)
	}
	sort.Strings(info.Targets)
	return info, nil
}

// Path is the file the adapter was loaded from.
func (a *Adapter) Path() string { return a.path }

// Alpha is adapter.lora.alpha; the effective scale is scale*alpha/rank.
func (a *Adapter) Alpha() float32 { return a.alpha }

// Rank is the LoRA rank of the first target.
func (a *Adapter) Rank() int { return a.rank }

// Targets are the base tensors the adapter modifies.
func (a *Adapter) Targets() []string { return append([]string(nil), a.targets...) }

// Close frees the adapter. It fails while a context still has it attached.
func (a *Adapter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c == nil {
		return nil
	}
	if a.attached > 0 {
		return fmt.Errorf("llama: close adapter %s: still attached to %d context(s)", a.path, a.attached)
	}
	a.cleanup.Stop()
	C.llama_adapter_lora_free(a.c)
	a.c = nil
	return nil
}

func (a *Adapter) handle(m *Model) (*C.struct_llama_adapter_lora, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.c == nil {
		return nil, ErrClosed
	}
	if a.m != m {
		return nil, fmt.Errorf("llama: adapter %s was loaded for another model", a.path)
	}
	return a.c, nil
}

func (a *Adapter) attach() {
	a.mu.Lock()
	a.attached++
	a.mu.Unlock()
}

func (a *Adapter) detach() {
	a.mu.Lock()
	if a.attached > 0 {
		a.attached--
	}
	a.mu.Unlock()
}
