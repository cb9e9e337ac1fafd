package hf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"

	"github.com/fireact/fireact/llama/gguf"
)

// DType is a safetensors element type name as written in the header.
type DType string

// The element types this package reads and writes: the ones LoRA adapters
// and checkpoints of the models we run come in.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
)

// Size returns the bytes per element, or 0 for a type this package does not
// support.
func (d DType) Size() int64 {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// GGUFType returns the GGUF tensor type with the same element encoding.
func (d DType) GGUFType() (gguf.Type, bool) {
	switch d {
	case F32:
		return gguf.TypeF32, true
	case F16:
		return gguf.TypeF16, true
	case BF16:
		return gguf.TypeBF16, true
	}
	return 0, false
}

// dtypeOf is the inverse of DType.GGUFType.
func dtypeOf(t gguf.Type) (DType, bool) {
	switch t {
	case gguf.TypeF32:
		return F32, true
	case gguf.TypeF16:
		return F16, true
	case gguf.TypeBF16:
		return BF16, true
	}
	return "", false
}

// MaxSafetensorsHeader is the largest header accepted, the limit of the
// reference implementation (safetensors' MAX_HEADER_SIZE), so a corrupt
// length cannot make us allocate gigabytes.
const MaxSafetensorsHeader = 100_000_000

// metadataKey is the reserved header entry holding string metadata.
const metadataKey = "__metadata__"

// SafetensorsTensor describes one tensor of a safetensors file.
type SafetensorsTensor struct {
	// Name is the tensor name, e.g. "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".
	Name string
	// DType is the element type.
	DType DType
	// Shape is in torch order: the last dimension is contiguous, so an
	// nn.Linear weight mapping in to out has shape [out, in].
	Shape []int64
	// Begin and End delimit the data, relative to the data section
	// (Safetensors.DataOffset).
	Begin, End int64
}

// Elements returns the number of elements.
func (t SafetensorsTensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Safetensors is the validated header of a safetensors file.
type Safetensors struct {
	// Path is the file the header was read from.
	Path string
	// Metadata is the __metadata__ entry (nil if absent).
	Metadata map[string]string
	// Tensors holds the tensors sorted by name.
	Tensors []SafetensorsTensor
	// DataOffset is the absolute file offset of the data section (8 + header length).
	DataOffset int64
	// FileSize is the size of the file in bytes.
	FileSize int64

	index map[string]int
}

// SafetensorsError is a problem found in a safetensors file.
type SafetensorsError struct {
	// Path is the file.
	Path string
	// Tensor is the tensor concerned, or "" when the problem is not tied to one.
	Tensor string
	// Offset is the absolute byte offset where the problem was found, or -1.
	Offset int64
	// Msg describes the problem.
	Msg string
	// Err is an underlying error (I/O, JSON), if any.
	Err error
}

// Error formats the problem as "safetensors: PATH: tensor NAME: at byte N: MSG".
func (e *SafetensorsError) Error() string {
	s := "safetensors: " + e.Path + ": "
	if e.Tensor != "" {
		s += fmt.Sprintf("tensor %q: ", e.Tensor)
	}
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
func (e *SafetensorsError) Unwrap() error { return e.Err }

// ReadSafetensors reads and validates the header of a safetensors file. It
// checks that the 8-byte header length fits the file and the limit, that the
// header is one JSON object without duplicate names whose entries have
// exactly dtype, shape and data_offsets, that each dtype is F32, F16 or BF16,
// that shape × element size equals the byte range, that every range lies
// inside the data section and that no two ranges overlap.
func ReadSafetensors(path string) (*Safetensors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &SafetensorsError{Path: path, Offset: -1, Msg: "open", Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &SafetensorsError{Path: path, Offset: -1, Msg: "stat", Err: err}
	}
	return parseSafetensors(path, f, fi.Size())
}

// rawEntry is one tensor entry of the header as written in JSON.
type rawEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

func parseSafetensors(path string, r io.ReaderAt, size int64) (*Safetensors, error) {
	fail := func(tensor string, off int64, err error, format string, args ...any) error {
		return &SafetensorsError{Path: path, Tensor: tensor, Offset: off, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	var lenBuf [8]byte
	if size < 8 {
		return nil, fail("", 0, nil, "file has %d bytes, too short for the 8-byte header length", size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fail("", 0, err, "read header length")
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxSafetensorsHeader {
		return nil, fail("", 0, nil, "header length %d exceeds the limit %d", n, MaxSafetensorsHeader)
	}
	if n > uint64(size-8) {
		return nil, fail("", 0, nil, "header length %d exceeds the %d bytes after the length field", n, size-8)
	}
	if n < 2 {
		return nil, fail("", 8, nil, "header length %d is too short for a JSON object", n)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fail("", 8, err, "read header")
	}
	if hdr[0] != '{' {
		return nil, fail("", 8, nil, "header does not start with '{' (got %q)", hdr[0])
	}
	st := &Safetensors{Path: path, DataOffset: 8 + int64(n), FileSize: size, index: map[string]int{}}
	dataLen := size - st.DataOffset
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, fail("", 8, err, "header is not JSON")
	}
	for dec.More() {
		keyOff := 8 + dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, fail("", keyOff, err, "header is not valid JSON")
		}
		name, _ := tok.(string) // object keys are always strings
		valOff := 8 + dec.InputOffset()
		if name == metadataKey {
			if st.Metadata != nil {
				return nil, fail("", keyOff, nil, "duplicate %s entry", metadataKey)
			}
			md := map[string]string{}
			if err := dec.Decode(&md); err != nil {
				return nil, fail("", valOff, err, "%s must map strings to strings", metadataKey)
			}
			st.Metadata = md
			continue
		}
		if _, dup := st.index[name]; dup {
			return nil, fail(name, keyOff, nil, "duplicate tensor name")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fail(name, valOff, err, "header is not valid JSON")
		}
		t, err := checkEntry(name, raw, dataLen)
		if err != nil {
			return nil, fail(name, valOff, nil, "%s", err.Error())
		}
		st.index[name] = len(st.Tensors)
		st.Tensors = append(st.Tensors, t)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fail("", 8+dec.InputOffset(), err, "header is not valid JSON")
	}
	// The reference writer pads the header with spaces; anything else after
	// the object is a corrupt header.
	if rest := bytes.TrimRight(hdr[dec.InputOffset():], " \t\r\n"); len(rest) != 0 {
		return nil, fail("", 8+dec.InputOffset(), nil, "unexpected bytes after the header object")
	}
	byBegin := make([]int, len(st.Tensors))
	for i := range byBegin {
		byBegin[i] = i
	}
	sort.Slice(byBegin, func(i, j int) bool {
		a, b := st.Tensors[byBegin[i]], st.Tensors[byBegin[j]]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	for k := 1; k < len(byBegin); k++ {
		prev, cur := st.Tensors[byBegin[k-1]], st.Tensors[byBegin[k]]
		if cur.Begin < prev.End {
			return nil, fail(cur.Name, st.DataOffset+cur.Begin, nil, "data [%d, %d) overlaps tensor %q [%d, %d)",
				cur.Begin, cur.End, prev.Name, prev.Begin, prev.End)
		}
	}
	sort.Slice(st.Tensors, func(i, j int) bool { return st.Tensors[i].Name < st.Tensors[j].Name })
	for i, t := range st.Tensors {
		st.index[t.Name] = i
	}
	return st, nil
}

// checkEntry validates one tensor entry against the data section length.
func checkEntry(name string, raw json.RawMessage, dataLen int64) (SafetensorsTensor, error) {
	var e rawEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return SafetensorsTensor{}, fmt.Errorf("entry must be {\"dtype\", \"shape\", \"data_offsets\"}: %v", err)
	}
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return SafetensorsTensor{}, errors.New("entry must have dtype, shape and data_offsets")
	}
	t := SafetensorsTensor{Name: name, DType: DType(*e.DType), Shape: *e.Shape}
	es := t.DType.Size()
	if es == 0 {
		return t, fmt.Errorf("dtype %q is not supported (want F32, F16 or BF16)", *e.DType)
	}
	if len(*e.DataOffsets) != 2 {
		return t, fmt.Errorf("data_offsets has %d values, want [begin, end]", len(*e.DataOffsets))
	}
	t.Begin, t.End = (*e.DataOffsets)[0], (*e.DataOffsets)[1]
	if t.Begin < 0 || t.End < t.Begin {
		return t, fmt.Errorf("data_offsets [%d, %d] is not a range", t.Begin, t.End)
	}
	if t.End > dataLen {
		return t, fmt.Errorf("data_offsets [%d, %d] ends past the data section (%d bytes)", t.Begin, t.End, dataLen)
	}
	nbytes := uint64(es)
	for _, d := range t.Shape {
		if d < 0 {
			return t, fmt.Errorf("shape %v has a negative dimension", t.Shape)
		}
		hi, lo := bits.Mul64(nbytes, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return t, fmt.Errorf("shape %v overflows", t.Shape)
		}
		nbytes = lo
	}
	if int64(nbytes) != t.End-t.Begin {
		return t, fmt.Errorf("shape %v of %s needs %d bytes but data_offsets [%d, %d] holds %d", t.Shape, t.DType, nbytes, t.Begin, t.End, t.End-t.Begin)
	}
	return t, nil
}

// Tensor returns the named tensor's description.
func (s *Safetensors) Tensor(name string) (SafetensorsTensor, bool) {
	i, ok := s.index[name]
	if !ok {
		return SafetensorsTensor{}, false
	}
	return s.Tensors[i], true
}

// ReadData returns the raw little-endian bytes of the named tensor, reading
// from r (the file at s.Path, opened by the caller so that many tensors share
// one handle).
func (s *Safetensors) ReadData(r io.ReaderAt, name string) ([]byte, error) {
	t, ok := s.Tensor(name)
	if !ok {
		return nil, &SafetensorsError{Path: s.Path, Tensor: name, Offset: -1, Msg: "no such tensor"}
	}
	buf := make([]byte, t.End-t.Begin)
	if _, err := r.ReadAt(buf, s.DataOffset+t.Begin); err != nil {
		return nil, &SafetensorsError{Path: s.Path, Tensor: name, Offset: s.DataOffset + t.Begin, Msg: "read data", Err: err}
	}
	return buf, nil
}
