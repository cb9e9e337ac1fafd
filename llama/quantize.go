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
	"unsafe"

	"github.com/fireact/fireact/llama/gguf"
)

// quantTypes maps llama.cpp quantize type names to llama_ftype values (llama.h).
var quantTypes = map[string]int{
	"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9,
	"q2_k": 10, "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13, "q4_k_s": 14, "q4_k_m": 15,
	"q5_k_s": 16, "q5_k_m": 17, "q6_k": 18, "iq4_nl": 25, "iq4_xs": 30, "bf16": 32,
}

// QuantTypes lists the accepted quantization type names.
func QuantTypes() []string {
	out := make([]string, 0, len(quantTypes))
	for k := range quantTypes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Quantize writes a copy of the model at in to out with its weights converted to
// typ (e.g. "q8_0", "q4_0", "q4_k_m"), using llama.cpp's quantizer. threads <= 0
// uses every CPU.
func Quantize(in, out, typ string, threads int) error {
	ft, ok := quantTypes[strings.ToLower(typ)]
	if !ok {
		return fmt.Errorf("llama: quantize: unknown type %q (want one of %s)", typ, strings.Join(QuantTypes(), ", "))
	}
	f, err := gguf.Read(in)
	if err != nil {
		return fmt.Errorf("llama: quantize: %w", err)
	}
	if f.Architecture() == "" {
		return fmt.Errorf("llama: quantize %s: not a model (no general.architecture)", in)
	}
	ensureInit()
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	cin := C.CString(in)
	defer C.free(unsafe.Pointer(cin))
	cout := C.CString(out)
	defer C.free(unsafe.Pointer(cout))
	var errBuf [errBufLen]C.char
	if rc := C.fa_quantize(cin, cout, C.int32_t(ft), C.int32_t(threads), &errBuf[0], errBufLen); rc != 0 {
		return fmt.Errorf("llama: quantize %s to %s: %s", in, typ, cErr(errBuf[:]))
	}
	return nil
}
