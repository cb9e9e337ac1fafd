package gguf

import (
	"fmt"
	"math"
)

// Type is a ggml tensor element type (enum ggml_type in ggml.h). The numeric
// values are part of the file format and must never be renumbered.
type Type uint32

// Tensor types, numbered exactly as in ggml.h. Gaps (4, 5, 31-33, 36-38) are
// types whose support was removed from ggml; they are not constants here but
// Read reports them by number.
const (
	TypeF32     Type = 0
	TypeF16     Type = 1
	TypeQ4_0    Type = 2
	TypeQ4_1    Type = 3
	TypeQ5_0    Type = 6
	TypeQ5_1    Type = 7
	TypeQ8_0    Type = 8
	TypeQ8_1    Type = 9
	TypeQ2_K    Type = 10
	TypeQ3_K    Type = 11
	TypeQ4_K    Type = 12
	TypeQ5_K    Type = 13
	TypeQ6_K    Type = 14
	TypeQ8_K    Type = 15
	TypeIQ2_XXS Type = 16
	TypeIQ2_XS  Type = 17
	TypeIQ3_XXS Type = 18
	TypeIQ1_S   Type = 19
	TypeIQ4_NL  Type = 20
	TypeIQ3_S   Type = 21
	TypeIQ2_S   Type = 22
	TypeIQ4_XS  Type = 23
	TypeI8      Type = 24
	TypeI16     Type = 25
	TypeI32     Type = 26
	TypeI64     Type = 27
	TypeF64     Type = 28
	TypeIQ1_M   Type = 29
	TypeBF16    Type = 30
	TypeTQ1_0   Type = 34
	TypeTQ2_0   Type = 35
	TypeMXFP4   Type = 39

	// TypeCount is GGML_TYPE_COUNT: every valid type is below it.
	TypeCount Type = 40
)

// typeTraits mirrors the blck_size/type_size columns of type_traits in
// ggml.c. A zero block size marks a removed type (ggml reports it the same
// way and gguf.cpp rejects it for that reason).
type typeTraits struct {
	name      string
	blockSize int64
	typeSize  int64
}

// qkK is QK_K, the super-block size of the k-quants and i-quants.
const qkK = 256

var traits = [TypeCount]typeTraits{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 2 + 16},
	TypeQ4_1:    {"Q4_1", 32, 2*2 + 16},
	4:           {"Q4_2(removed)", 0, 0},
	5:           {"Q4_3(removed)", 0, 0},
	TypeQ5_0:    {"Q5_0", 32, 2 + 4 + 16},
	TypeQ5_1:    {"Q5_1", 32, 2*2 + 4 + 16},
	TypeQ8_0:    {"Q8_0", 32, 2 + 32},
	TypeQ8_1:    {"Q8_1", 32, 2*2 + 32},
	TypeQ2_K:    {"Q2_K", qkK, 2*2 + qkK/16 + qkK/4},
	TypeQ3_K:    {"Q3_K", qkK, 2 + qkK/4 + qkK/8 + 12},
	TypeQ4_K:    {"Q4_K", qkK, 2*2 + 12 + qkK/2},
	TypeQ5_K:    {"Q5_K", qkK, 2*2 + 12 + qkK/2 + qkK/8},
	TypeQ6_K:    {"Q6_K", qkK, 2 + qkK/16 + 3*qkK/4},
	TypeQ8_K:    {"Q8_K", qkK, 4 + qkK + qkK/16*2},
	TypeIQ2_XXS: {"IQ2_XXS", qkK, 2 + qkK/8*2},
	TypeIQ2_XS:  {"IQ2_XS", qkK, 2 + qkK/8*2 + qkK/32},
	TypeIQ3_XXS: {"IQ3_XXS", qkK, 2 + 3*(qkK/8)},
	TypeIQ1_S:   {"IQ1_S", qkK, 2 + qkK/8 + qkK/16},
	TypeIQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	TypeIQ3_S:   {"IQ3_S", qkK, 2 + 13*(qkK/32) + qkK/64},
	TypeIQ2_S:   {"IQ2_S", qkK, 2 + qkK/4 + qkK/16},
	TypeIQ4_XS:  {"IQ4_XS", qkK, 2 + 2 + qkK/64 + qkK/2},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", qkK, qkK/8 + qkK/16 + qkK/32},
	TypeBF16:    {"BF16", 1, 2},
	31:          {"Q4_0_4_4(removed)", 0, 0},
	32:          {"Q4_0_4_8(removed)", 0, 0},
	33:          {"Q4_0_8_8(removed)", 0, 0},
	TypeTQ1_0:   {"TQ1_0", qkK, 2 + qkK/64 + (qkK-4*qkK/64)/5},
	TypeTQ2_0:   {"TQ2_0", qkK, 2 + qkK/4},
	36:          {"IQ4_NL_4_4(removed)", 0, 0},
	37:          {"IQ4_NL_4_8(removed)", 0, 0},
	38:          {"IQ4_NL_8_8(removed)", 0, 0},
	TypeMXFP4:   {"MXFP4", 32, 1 + 16},
}

// Known reports whether t is a type ggml can still load: defined in ggml.h
// and not one of the removed ones (which ggml gives a block size of 0).
func (t Type) Known() bool {
	return t < TypeCount && traits[t].blockSize > 0
}

// Removed reports whether t is a type number ggml once used and no longer
// supports (for example Q4_2 or Q4_0_4_4).
func (t Type) Removed() bool {
	return t < TypeCount && traits[t].blockSize == 0
}

// String returns the ggml name of the type in upper case ("F32", "Q4_K"),
// with a "(removed)" suffix for removed types and "Type(N)" for numbers ggml
// never defined.
func (t Type) String() string {
	if t < TypeCount {
		return traits[t].name
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// BlockSize returns the number of elements in one block of the type (1 for
// plain types, 32 or 256 for quantized ones), or 0 for unknown types.
func (t Type) BlockSize() int64 {
	if !t.Known() {
		return 0
	}
	return traits[t].blockSize
}

// TypeSize returns the number of bytes of one block of the type, or 0 for
// unknown types.
func (t Type) TypeSize() int64 {
	if !t.Known() {
		return 0
	}
	return traits[t].typeSize
}

// Quantized reports whether the type stores elements in blocks of more than
// one element.
func (t Type) Quantized() bool {
	return t.BlockSize() > 1
}

// RowSize returns the number of bytes n consecutive elements of the type
// occupy, as ggml_row_size does. It returns -1 when the type is unknown, n is
// negative, n is not a multiple of the block size, or the size overflows.
func (t Type) RowSize(n int64) int64 {
	bs := t.BlockSize()
	if bs == 0 || n < 0 || n%bs != 0 {
		return -1
	}
	if n/bs > math.MaxInt64/t.TypeSize() {
		return -1 // overflow
	}
	return n / bs * t.TypeSize()
}

// ValueType is the type tag of a GGUF metadata value (enum gguf_type).
type ValueType uint32

// Metadata value types, numbered as in gguf.h.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12

	// valueTypeCount is GGUF_TYPE_COUNT.
	valueTypeCount ValueType = 13
)

var valueTypeNames = [valueTypeCount]string{
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
}

// valueSizes holds the encoded size of fixed-size scalar value types; 0 for
// string and array, whose size depends on the content.
var valueSizes = [valueTypeCount]int64{1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}

// String returns the lower-case Go-like name of the value type.
func (v ValueType) String() string {
	if v < valueTypeCount {
		return valueTypeNames[v]
	}
	return fmt.Sprintf("ValueType(%d)", uint32(v))
}

// Valid reports whether v is one of the types defined by gguf.h.
func (v ValueType) Valid() bool { return v < valueTypeCount }

// valueTypeOf maps a Go value to its GGUF value type. For slices it returns
// the element type and isArray=true. ok is false for Go types that have no
// GGUF encoding (including nested arrays, which gguf.cpp rejects).
func valueTypeOf(v any) (vt ValueType, isArray bool, ok bool) {
	switch v.(type) {
	case uint8:
		return ValueUint8, false, true
	case int8:
		return ValueInt8, false, true
	case uint16:
		return ValueUint16, false, true
	case int16:
		return ValueInt16, false, true
	case uint32:
		return ValueUint32, false, true
	case int32:
		return ValueInt32, false, true
	case float32:
		return ValueFloat32, false, true
	case bool:
		return ValueBool, false, true
	case string:
		return ValueString, false, true
	case uint64:
		return ValueUint64, false, true
	case int64:
		return ValueInt64, false, true
	case float64:
		return ValueFloat64, false, true
	case []uint8:
		return ValueUint8, true, true
	case []int8:
		return ValueInt8, true, true
	case []uint16:
		return ValueUint16, true, true
	case []int16:
		return ValueInt16, true, true
	case []uint32:
		return ValueUint32, true, true
	case []int32:
		return ValueInt32, true, true
	case []float32:
		return ValueFloat32, true, true
	case []bool:
		return ValueBool, true, true
	case []string:
		return ValueString, true, true
	case []uint64:
		return ValueUint64, true, true
	case []int64:
		return ValueInt64, true, true
	case []float64:
		return ValueFloat64, true, true
	}
	return 0, false, false
}
