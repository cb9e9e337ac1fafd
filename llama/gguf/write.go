package gguf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Writer builds a GGUF file (version 3). Metadata keys keep their insertion
// order and tensors are written in the order they were added, so the output
// is a deterministic function of the calls made.
//
// Tensor data is either given as bytes (AddTensor) or produced by a function
// at write time (AddTensorFunc), so large models can be written without
// holding all tensors in memory.
//
// Errors from Set and AddTensor* are returned immediately and also remembered:
// WriteFile and WriteTo fail with the first of them, so a caller that does not
// check every call still cannot write a broken file.
type Writer struct {
	kvs     []KV
	keys    map[string]int
	tensors []writerTensor
	names   map[string]bool
	err     error
}

type writerTensor struct {
	info TensorInfo
	size int64
	data []byte
	fn   func(io.Writer) error
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{keys: map[string]int{}, names: map[string]bool{}}
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// Set sets a metadata key. value must be one of the Go types listed on KV;
// setting an existing key replaces its value in place. general.alignment
// must be a uint32 power of two.
func (w *Writer) Set(key string, value any) error {
	if key == "" {
		return w.fail(errors.New("gguf: Set: empty key"))
	}
	if _, _, ok := valueTypeOf(value); !ok {
		return w.fail(fmt.Errorf("gguf: Set %q: unsupported value type %T", key, value))
	}
	if key == KeyAlignment {
		a, ok := value.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return w.fail(fmt.Errorf("gguf: Set %q: must be a uint32 power of two, got %T %v", key, value, value))
		}
	}
	if i, ok := w.keys[key]; ok {
		w.kvs[i].Value = value
		return nil
	}
	w.keys[key] = len(w.kvs)
	w.kvs = append(w.kvs, KV{Key: key, Value: value})
	return nil
}

// checkTensor validates a tensor description with the same rules Read
// applies and returns its size in bytes.
func checkTensor(name string, typ Type, shape []uint64) (int64, error) {
	switch {
	case name == "":
		return 0, errors.New("empty tensor name")
	case len(name) >= MaxNameLen:
		return 0, fmt.Errorf("tensor name %q is %d bytes, the limit is %d", name, len(name), MaxNameLen-1)
	case strings.IndexByte(name, 0) >= 0:
		return 0, fmt.Errorf("tensor name %q contains a NUL byte", name)
	case len(shape) < 1 || len(shape) > MaxDims:
		return 0, fmt.Errorf("tensor %q has %d dimensions, must be 1 to %d", name, len(shape), MaxDims)
	case !typ.Known():
		return 0, fmt.Errorf("tensor %q has unsupported type %s", name, typ)
	}
	ne := [MaxDims]int64{1, 1, 1, 1}
	for i, d := range shape {
		if d == 0 || d > math.MaxInt64 {
			return 0, fmt.Errorf("tensor %q dimension %d is %d", name, i, d)
		}
		ne[i] = int64(d)
	}
	if math.MaxInt64/ne[1] <= ne[0] || math.MaxInt64/ne[2] <= ne[0]*ne[1] || math.MaxInt64/ne[3] <= ne[0]*ne[1]*ne[2] {
		return 0, fmt.Errorf("tensor %q shape %v has too many elements", name, shape)
	}
	if ne[0]%typ.BlockSize() != 0 {
		return 0, fmt.Errorf("tensor %q of type %s: row length %d is not a multiple of the block size %d", name, typ, ne[0], typ.BlockSize())
	}
	size := TensorInfo{Shape: shape, Type: typ}.Size()
	if size < 0 {
		return 0, fmt.Errorf("tensor %q shape %v is too large", name, shape)
	}
	return size, nil
}

func (w *Writer) addTensor(name string, typ Type, shape []uint64, data []byte, fn func(io.Writer) error) error {
	size, err := checkTensor(name, typ, shape)
	if err != nil {
		return w.fail(fmt.Errorf("gguf: AddTensor: %w", err))
	}
	if w.names[name] {
		return w.fail(fmt.Errorf("gguf: AddTensor: duplicate tensor name %q", name))
	}
	if fn == nil && int64(len(data)) != size {
		return w.fail(fmt.Errorf("gguf: AddTensor %q: %d bytes of data, a %s tensor of shape %v needs %d", name, len(data), typ, shape, size))
	}
	w.names[name] = true
	w.tensors = append(w.tensors, writerTensor{
		info: TensorInfo{Name: name, Shape: append([]uint64(nil), shape...), Type: typ},
		size: size, data: data, fn: fn,
	})
	return nil
}

// AddTensor adds a tensor whose encoded data is data; len(data) must be the
// tensor's exact size. shape is in ggml order (shape[0] is the row length).
// The slice is retained until the file is written.
func (w *Writer) AddTensor(name string, typ Type, shape []uint64, data []byte) error {
	return w.addTensor(name, typ, shape, data, nil)
}

// AddTensorFunc adds a tensor whose data is produced by fn at write time. fn
// must write exactly the tensor's size in bytes; writing more or less makes
// the write fail. fn is called once per WriteFile/WriteTo, in tensor order.
func (w *Writer) AddTensorFunc(name string, typ Type, shape []uint64, fn func(io.Writer) error) error {
	if fn == nil {
		return w.fail(fmt.Errorf("gguf: AddTensorFunc %q: nil function", name))
	}
	return w.addTensor(name, typ, shape, nil, fn)
}

// alignment returns general.alignment if set, else the default.
func (w *Writer) alignment() uint64 {
	if i, ok := w.keys[KeyAlignment]; ok {
		return uint64(w.kvs[i].Value.(uint32)) // checked by Set
	}
	return DefaultAlignment
}

// WriteFile writes the GGUF file to path. It writes to a temporary file in
// the same directory and renames it into place, so readers never see a
// partial file and a failed write leaves no file behind.
func (w *Writer) WriteFile(path string) (err error) {
	if w.err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, w.err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if _, err = w.WriteTo(bw); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	// Synced before the rename and the directory after it: a power loss
	// leaves the old file or the whole new one, never a truncated one.
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gguf: write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		derr = d.Sync()
		d.Close()
		if derr != nil {
			return fmt.Errorf("gguf: write %s: sync directory: %w", path, derr)
		}
	}
	return nil
}

// countingWriter counts bytes so the header position and the size written by
// a tensor function can be checked.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteTo writes the GGUF file to dst and returns the number of bytes
// written. The layout matches gguf_write_to_file: header, metadata, tensor
// descriptions, padding to the alignment, then each tensor's data padded to
// the alignment.
func (w *Writer) WriteTo(dst io.Writer) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	align := w.alignment()
	cw := &countingWriter{w: dst}
	var hdr bytes.Buffer
	le := binary.LittleEndian
	hdr.WriteString(Magic)
	hdr.Write(le.AppendUint32(nil, Version))
	hdr.Write(le.AppendUint64(nil, uint64(len(w.tensors))))
	hdr.Write(le.AppendUint64(nil, uint64(len(w.kvs))))
	for _, kv := range w.kvs {
		appendString(&hdr, kv.Key)
		if err := appendValue(&hdr, kv.Value); err != nil {
			return 0, fmt.Errorf("key %q: %w", kv.Key, err)
		}
	}
	var off uint64
	for _, t := range w.tensors {
		appendString(&hdr, t.info.Name)
		hdr.Write(le.AppendUint32(nil, uint32(len(t.info.Shape))))
		for _, d := range t.info.Shape {
			hdr.Write(le.AppendUint64(nil, d))
		}
		hdr.Write(le.AppendUint32(nil, uint32(t.info.Type)))
		hdr.Write(le.AppendUint64(nil, off))
		off = pad(off+uint64(t.size), align)
	}
	hdr.Write(make([]byte, pad(uint64(hdr.Len()), align)-uint64(hdr.Len())))
	if _, err := cw.Write(hdr.Bytes()); err != nil {
		return cw.n, err
	}
	zeros := make([]byte, align)
	for _, t := range w.tensors {
		start := cw.n
		if t.fn != nil {
			// Count only what fn writes, and stop it early if it overruns,
			// so a buggy function cannot silently shift later tensors.
			lw := &limitedWriter{w: cw, left: t.size, name: t.info.Name}
			if err := t.fn(lw); err != nil {
				return cw.n, fmt.Errorf("tensor %q: %w", t.info.Name, err)
			}
			if lw.left != 0 {
				return cw.n, fmt.Errorf("tensor %q: function wrote %d bytes, the tensor needs %d", t.info.Name, t.size-lw.left, t.size)
			}
		} else if _, err := cw.Write(t.data); err != nil {
			return cw.n, fmt.Errorf("tensor %q: %w", t.info.Name, err)
		}
		if got := cw.n - start; got != t.size {
			return cw.n, fmt.Errorf("tensor %q: wrote %d bytes, the tensor needs %d", t.info.Name, got, t.size)
		}
		if p := pad(uint64(t.size), align) - uint64(t.size); p > 0 {
			if _, err := cw.Write(zeros[:p]); err != nil {
				return cw.n, err
			}
		}
	}
	return cw.n, nil
}

// limitedWriter passes at most left bytes through and fails beyond that.
type limitedWriter struct {
	w    io.Writer
	left int64
	name string
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("function wrote more than the tensor's size (%d bytes over)", int64(len(p))-l.left)
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	return n, err
}

func appendString(b *bytes.Buffer, s string) {
	b.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
	b.WriteString(s)
}

// appendValue encodes a value with its type tag (and element type and length
// for arrays).
func appendValue(b *bytes.Buffer, v any) error {
	vt, isArray, ok := valueTypeOf(v)
	if !ok {
		return fmt.Errorf("unsupported value type %T", v)
	}
	le := binary.LittleEndian
	u32 := func(x uint32) { b.Write(le.AppendUint32(nil, x)) }
	u64 := func(x uint64) { b.Write(le.AppendUint64(nil, x)) }
	if !isArray {
		u32(uint32(vt))
	}
	switch x := v.(type) {
	case uint8:
		b.WriteByte(x)
	case int8:
		b.WriteByte(byte(x))
	case uint16:
		b.Write(le.AppendUint16(nil, x))
	case int16:
		b.Write(le.AppendUint16(nil, uint16(x)))
	case uint32:
		u32(x)
	case int32:
		u32(uint32(x))
	case float32:
		u32(math.Float32bits(x))
	case bool:
		b.WriteByte(boolByte(x))
	case string:
		appendString(b, x)
	case uint64:
		u64(x)
	case int64:
		u64(uint64(x))
	case float64:
		u64(math.Float64bits(x))
	default:
		u32(uint32(ValueArray))
		u32(uint32(vt))
		return appendArray(b, v)
	}
	return nil
}

func appendArray(b *bytes.Buffer, v any) error {
	le := binary.LittleEndian
	n := func(l int) { b.Write(le.AppendUint64(nil, uint64(l))) }
	switch x := v.(type) {
	case []uint8:
		n(len(x))
		b.Write(x)
	case []int8:
		n(len(x))
		for _, e := range x {
			b.WriteByte(byte(e))
		}
	case []uint16:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint16(nil, e))
		}
	case []int16:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint16(nil, uint16(e)))
		}
	case []uint32:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint32(nil, e))
		}
	case []int32:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint32(nil, uint32(e)))
		}
	case []float32:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint32(nil, math.Float32bits(e)))
		}
	case []bool:
		n(len(x))
		for _, e := range x {
			b.WriteByte(boolByte(e))
		}
	case []string:
		n(len(x))
		for _, e := range x {
			appendString(b, e)
		}
	case []uint64:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint64(nil, e))
		}
	case []int64:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint64(nil, uint64(e)))
		}
	case []float64:
		n(len(x))
		for _, e := range x {
			b.Write(le.AppendUint64(nil, math.Float64bits(e)))
		}
	default:
		return fmt.Errorf("unsupported array type %T", v)
	}
	return nil
}

func boolByte(x bool) byte {
	if x {
		return 1
	}
	return 0
}
