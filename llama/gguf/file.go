// Package gguf reads, validates and writes GGUF files, the model format of
// llama.cpp/ggml, in pure Go.
//
// Its main job is to stand in front of llama.cpp: gguf.cpp and the llama.cpp
// loaders abort() the whole process (GGML_ASSERT) or read out of bounds on
// some malformed files, so every file is validated by Read before it is handed
// to the C++ side. Read accepts only what gguf.cpp accepts (plus a few
// stricter checks, documented on Read) and reports every problem as an *Error
// naming the file, the byte offset and the problem.
//
// The package also writes GGUF files (Writer) and implements the reference
// F32/F16/Q8_0/Q4_0 encoders and decoders of ggml, which is enough to make
// small test models in Go (see package modelgen).
package gguf

import (
	"fmt"
	"math"
	"math/bits"
)

// Magic is the four bytes every GGUF file starts with.
const Magic = "GGUF"

// Version is the GGUF version the Writer produces (GGUF_VERSION).
const Version = 3

// DefaultAlignment is the data alignment used when general.alignment is not
// set (GGUF_DEFAULT_ALIGNMENT).
const DefaultAlignment = 32

// MaxNameLen is GGML_MAX_NAME: tensor names must be strictly shorter, since
// ggml stores them NUL-terminated in a char[64].
const MaxNameLen = 64

// MaxDims is GGML_MAX_DIMS.
const MaxDims = 4

// KeyAlignment is the metadata key that overrides the data alignment. It must
// be a uint32 power of two.
const KeyAlignment = "general.alignment"

// KV is one metadata key/value pair. Value holds a Go-typed value: one of
// uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64,
// bool, string, or a slice of one of these for GGUF arrays ([]string,
// []float32, []int32, ...). Arrays of arrays are not supported, as in
// llama.cpp.
type KV struct {
	Key   string
	Value any
}

// Type returns the GGUF value type of the value (the element type for
// arrays), whether it is an array, and false if Value has no GGUF encoding.
func (kv KV) Type() (vt ValueType, isArray bool, ok bool) {
	return valueTypeOf(kv.Value)
}

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	// Name is the tensor name, e.g. "blk.0.attn_q.weight".
	Name string
	// Shape holds the dimensions in ggml order: Shape[0] (ne[0]) is the
	// contiguous row length, so a matrix mapping n_in to n_out has shape
	// [n_in, n_out].
	Shape []uint64
	// Type is the element type.
	Type Type
	// Offset is the position of the tensor data relative to the start of the
	// data section (File.DataOffset).
	Offset uint64
}

// Elements returns the number of elements of the tensor, or -1 if the
// count does not fit in an int64 (never for a tensor returned by Read).
func (t TensorInfo) Elements() int64 {
	n := uint64(1)
	for _, d := range t.Shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return -1
		}
		n = lo
	}
	return int64(n)
}

// Size returns the number of bytes of the tensor data (without alignment
// padding), or -1 if the type is unknown, the row length is not a multiple
// of the block size, or the size overflows (never for a tensor returned by
// Read).
func (t TensorInfo) Size() int64 {
	if len(t.Shape) == 0 {
		return t.Type.RowSize(1)
	}
	if t.Shape[0] > math.MaxInt64 {
		return -1
	}
	row := t.Type.RowSize(int64(t.Shape[0]))
	if row < 0 {
		return -1
	}
	n := uint64(row)
	for _, d := range t.Shape[1:] {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return -1
		}
		n = lo
	}
	return int64(n)
}

// File is the parsed header of a GGUF file: metadata and tensor
// descriptions, but not the tensor data.
type File struct {
	// Path is the path the file was read from.
	Path string
	// Version is the GGUF version (2 or 3).
	Version uint32
	// Alignment is the data alignment (general.alignment or 32).
	Alignment uint64
	// KVs holds the metadata in file order.
	KVs []KV
	// Tensors holds the tensor descriptions in file order.
	Tensors []TensorInfo
	// DataOffset is the absolute file offset of the data section.
	DataOffset int64
	// FileSize is the size of the file in bytes.
	FileSize int64

	kvIndex     map[string]int
	tensorIndex map[string]int
}

// index builds the lookup maps; Read calls it once so accessors are O(1)
// and no state is mutated lazily (a File is safe for concurrent reads).
func (f *File) index() {
	f.kvIndex = make(map[string]int, len(f.KVs))
	for i, kv := range f.KVs {
		f.kvIndex[kv.Key] = i
	}
	f.tensorIndex = make(map[string]int, len(f.Tensors))
	for i, t := range f.Tensors {
		f.tensorIndex[t.Name] = i
	}
}

// Get returns the value stored under key.
func (f *File) Get(key string) (any, bool) {
	if f.kvIndex == nil {
		// A File built by hand rather than by Read: fall back to a scan.
		for _, kv := range f.KVs {
			if kv.Key == key {
				return kv.Value, true
			}
		}
		return nil, false
	}
	i, ok := f.kvIndex[key]
	if !ok {
		return nil, false
	}
	return f.KVs[i].Value, true
}

// String returns the string value of key; ok is false if the key is missing
// or not a string.
func (f *File) String(key string) (string, bool) {
	v, _ := f.Get(key)
	s, ok := v.(string)
	return s, ok
}

// Uint returns the value of key as a uint64 when it is an integer of any
// width or signedness and not negative; ok is false otherwise.
func (f *File) Uint(key string) (uint64, bool) {
	v, _ := f.Get(key)
	switch x := v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// Float returns the value of key as a float64 when it is a float32 or
// float64; ok is false otherwise.
func (f *File) Float(key string) (float64, bool) {
	v, _ := f.Get(key)
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Strings returns the string-array value of key; ok is false if the key is
// missing or not an array of strings.
func (f *File) Strings(key string) ([]string, bool) {
	v, _ := f.Get(key)
	s, ok := v.([]string)
	return s, ok
}

// Architecture returns general.architecture, or "" if it is not set.
func (f *File) Architecture() string {
	s, _ := f.String("general.architecture")
	return s
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	if f.tensorIndex == nil {
		for _, t := range f.Tensors {
			if t.Name == name {
				return t, true
			}
		}
		return TensorInfo{}, false
	}
	i, ok := f.tensorIndex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorDataOffset returns the absolute file offset of the named tensor's
// data.
func (f *File) TensorDataOffset(name string) (int64, bool) {
	t, ok := f.Tensor(name)
	if !ok {
		return 0, false
	}
	return f.DataOffset + int64(t.Offset), true
}

// Error is a problem found in a GGUF file.
type Error struct {
	// Path is the file.
	Path string
	// Offset is the byte offset where the problem was found, or -1 when the
	// problem is not tied to a position.
	Offset int64
	// Msg describes the problem.
	Msg string
	// Err is the underlying error (for example an I/O error), if any.
	Err error
}

// Error formats the problem as "gguf: PATH: at byte N: MSG".
func (e *Error) Error() string {
	s := "gguf: " + e.Path + ": "
	if e.Offset >= 0 {
		s += fmt.Sprintf("at byte %d: ", e.Offset)
	}
	s += e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }
