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
	"unicode/utf8"
)

// Minimum encoded sizes, used to reject absurd counts before allocating: a
// header that claims 2^62 entries cannot be backed by a file of a few bytes.
const (
	// minKVSize: key length (8) + a non-empty key (1) + type (4) + the
	// smallest value (1).
	minKVSize = 8 + 1 + 4 + 1
	// minTensorInfoSize: name length (8) + n_dims (4) + one dim (8) + type
	// (4) + offset (8). Names may be empty in gguf.cpp, but Read rejects
	// that.
	minTensorInfoSize = 8 + 4 + 8 + 4 + 8
	// headerSize: magic, version, n_tensors, n_kv.
	headerSize = 4 + 4 + 8 + 8
)

// Limits beyond gguf.cpp's own, so that a corrupt length in a large file
// cannot make Read load gigabytes of tensor data as metadata. Real files are
// far below them: the largest metadata arrays are tokenizer vocabularies and
// merges (a few hundred thousand entries), the largest strings embedded
// tokenizer JSON (a few MiB).
const (
	// MaxArrayLen is the maximum number of elements of a metadata array.
	MaxArrayLen = 1 << 26
	// MaxStringLen is the maximum length of a metadata string in bytes.
	MaxStringLen = 1 << 28
)

// reader decodes little-endian GGUF fields while tracking the file position
// and the bytes left, so every length can be checked before it is allocated.
type reader struct {
	path string
	r    *bufio.Reader
	pos  int64
	size int64
}

func (r *reader) errAt(off int64, format string, args ...any) *Error {
	return &Error{Path: r.path, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (r *reader) remaining() int64 { return r.size - r.pos }

// bytes reads exactly n bytes; what names the field for error messages.
func (r *reader) bytes(n int64, what string) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, r.errAt(r.pos, "file truncated: %s needs %d bytes but only %d remain (file is %d bytes)", what, n, r.remaining(), r.size)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.r, buf); err != nil {
		return nil, &Error{Path: r.path, Offset: r.pos, Msg: "reading " + what, Err: err}
	}
	r.pos += n
	return buf, nil
}

// fixed reads len(buf) bytes into buf without allocating.
func (r *reader) fixed(buf []byte, what string) error {
	n := int64(len(buf))
	if n > r.remaining() {
		return r.errAt(r.pos, "file truncated: %s needs %d bytes but only %d remain (file is %d bytes)", what, n, r.remaining(), r.size)
	}
	if _, err := io.ReadFull(r.r, buf); err != nil {
		return &Error{Path: r.path, Offset: r.pos, Msg: "reading " + what, Err: err}
	}
	r.pos += n
	return nil
}

func (r *reader) u32(what string) (uint32, error) {
	var b [4]byte
	if err := r.fixed(b[:], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

func (r *reader) u64(what string) (uint64, error) {
	var b [8]byte
	if err := r.fixed(b[:], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// str reads a GGUF string (uint64 length + bytes), checking the length
// against the bytes left in the file before allocating.
func (r *reader) str(what string) (string, error) {
	at := r.pos
	n, err := r.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(r.remaining()) {
		return "", r.errAt(at, "%s length %d exceeds the %d bytes left in the file", what, n, r.remaining())
	}
	if n > MaxStringLen {
		return "", r.errAt(at, "%s length %d exceeds the limit of %d", what, n, MaxStringLen)
	}
	b, err := r.bytes(int64(n), what)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Read parses and validates the header, metadata and tensor descriptions of
// the GGUF file at path. It does not read tensor data, so it is fast on
// multi-gigabyte files, but it checks that every tensor's data lies inside
// the file.
//
// Read accepts a file only if gguf.cpp would load it without error or
// abort. Checks, in file order:
//   - magic "GGUF" (an empty file, legacy GGML/GGMF/GGJT/GGLA files,
//     safetensors, zip/PyTorch, pickle, Git LFS pointers and text files are
//     recognized and named);
//   - version 2 or 3 (0, 1, byte-swapped and future versions are rejected);
//   - tensor and key/value counts that the file size can back;
//   - keys: non-empty (gguf.cpp asserts on empty keys), unique, valid value
//     types, no arrays of arrays, every string and array length bounded by
//     the bytes left before allocating, and by MaxStringLen/MaxArrayLen;
//   - general.alignment: a scalar uint32 (gguf.cpp asserts otherwise) and a
//     non-zero power of two;
//   - keys llama.cpp reads without checking their type or length (see
//     checkLlamaKeys): tokenizer tokens/scores/token_type/merges, adapter
//     keys, split.no;
//   - tensors: non-empty name without NUL bytes and shorter than
//     GGML_MAX_NAME (64), unique; 1 to 4 dimensions, each at least 1 (a zero
//     dimension makes gguf.cpp divide by zero); element count below
//     INT64_MAX exactly as gguf.cpp computes it; a known, not removed type;
//     ne[0] a multiple of the block size;
//   - data offsets: each tensor's offset equals the running sum of the
//     previous tensors' sizes padded to the alignment (what gguf.cpp
//     requires, which implies aligned, in order and non-overlapping), and the
//     data section start plus each offset plus size is within the file.
//
// Every problem is returned as an *Error naming the path and byte offset.
// Read never panics on any input.
func Read(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Offset: -1, Msg: "cannot open", Err: err}
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, &Error{Path: path, Offset: -1, Msg: "cannot stat", Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, &Error{Path: path, Offset: -1, Msg: fmt.Sprintf("not a regular file (%s)", st.Mode().Type())}
	}
	// A large buffer matters: a 150k-token vocabulary is ~300k small reads.
	return parse(path, bufio.NewReaderSize(fh, 1<<20), st.Size())
}

// parse reads a GGUF header of a file of the given size from rd; path is
// only used in errors. Split from Read so the fuzz test can run without
// touching the disk.
func parse(path string, rd *bufio.Reader, size int64) (*File, error) {
	r := &reader{path: path, r: rd, size: size}
	return r.parse()
}

func (r *reader) parse() (*File, error) {
	if err := r.magic(); err != nil {
		return nil, err
	}
	f := &File{Path: r.path, FileSize: r.size, Alignment: DefaultAlignment}

	vat := r.pos
	v, err := r.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case v == 0:
		return nil, r.errAt(vat, "bad GGUF version 0")
	case v&0xFFFF == 0:
		return nil, r.errAt(vat, "GGUF version %d (%#x) is implausibly large: the file is probably big-endian, and only little-endian files are supported", v, v)
	case v == 1:
		return nil, r.errAt(vat, "GGUF version 1 is no longer supported by llama.cpp; convert the model again")
	case v > Version:
		return nil, r.errAt(vat, "GGUF version %d is newer than the supported version %d", v, Version)
	}
	f.Version = v

	nat := r.pos
	nTensors, err := r.u64("tensor count")
	if err != nil {
		return nil, err
	}
	kat := r.pos
	nKV, err := r.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// Each count is checked against the bytes left, so neither a huge count
	// nor a negative int64 (as gguf.cpp reads it) can cause a big allocation.
	if nKV > uint64(r.remaining()/minKVSize) {
		return nil, r.errAt(kat, "header claims %d metadata key/value pairs, but the %d bytes left can hold at most %d", nKV, r.remaining(), r.remaining()/minKVSize)
	}
	if nTensors > uint64(r.remaining()/minTensorInfoSize) {
		return nil, r.errAt(nat, "header claims %d tensors, but the %d bytes left can hold at most %d tensor descriptions", nTensors, r.remaining(), r.remaining()/minTensorInfoSize)
	}

	// Counts are bounded by the file size, but preallocating for a bogus
	// count in a multi-gigabyte file would still cost gigabytes, so storage
	// grows with the entries actually parsed.
	f.KVs = make([]KV, 0, min(nKV, 1024))
	kvPos := make([]int64, 0, min(nKV, 1024))
	seen := make(map[string]bool, min(nKV, 1024))
	for i := uint64(0); i < nKV; i++ {
		at := r.pos
		kv, err := r.kv(i, seen)
		if err != nil {
			return nil, err
		}
		seen[kv.Key] = true
		f.KVs = append(f.KVs, kv)
		kvPos = append(kvPos, at)
	}
	f.index()

	if i, ok := f.kvIndex[KeyAlignment]; ok {
		a, isU32 := f.KVs[i].Value.(uint32)
		if !isU32 {
			vt, arr, _ := f.KVs[i].Type()
			return nil, r.errAt(kvPos[i], "%s must be a uint32, got %s (llama.cpp aborts on this)", KeyAlignment, describeType(vt, arr))
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, r.errAt(kvPos[i], "%s is %d, not a power of 2", KeyAlignment, a)
		}
		f.Alignment = uint64(a)
	}
	if err := r.checkLlamaKeys(f, kvPos); err != nil {
		return nil, err
	}

	f.Tensors = make([]TensorInfo, 0, min(nTensors, 4096))
	offPos := make([]int64, 0, min(nTensors, 4096))
	names := make(map[string]bool, min(nTensors, 4096))
	for i := uint64(0); i < nTensors; i++ {
		t, at, err := r.tensorInfo(i, names)
		if err != nil {
			return nil, err
		}
		names[t.Name] = true
		f.Tensors = append(f.Tensors, t)
		offPos = append(offPos, at)
	}
	f.index()

	// The data section starts at the next multiple of the alignment; the
	// padding itself need not exist when there are no tensors.
	f.DataOffset = int64(pad(uint64(r.pos), f.Alignment))

	var expected uint64
	for i, t := range f.Tensors {
		if t.Offset%f.Alignment != 0 {
			return nil, r.errAt(offPos[i], "tensor %q has data offset %d, not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		if t.Offset != expected {
			return nil, r.errAt(offPos[i], "tensor %q has data offset %d, expected %d: tensor data must be stored in order, back to back, each padded to %d bytes", t.Name, t.Offset, expected, f.Alignment)
		}
		size := t.Size()
		if size < 0 {
			return nil, r.errAt(offPos[i], "tensor %q with shape %v of type %s is too large", t.Name, t.Shape, t.Type)
		}
		start := uint64(f.DataOffset) + t.Offset // no overflow: both are below the file size
		end := start + uint64(size)
		if start > uint64(r.size) || end > uint64(r.size) {
			return nil, r.errAt(int64(min(start, uint64(r.size))), "tensor %q data ends at %d, past end of file (%d bytes); the file is truncated", t.Name, end, r.size)
		}
		expected = pad(t.Offset+uint64(size), f.Alignment)
	}
	return f, nil
}

// pad rounds x up to a multiple of align (a power of two), like GGML_PAD.
func pad(x, align uint64) uint64 {
	return (x + align - 1) &^ (align - 1)
}

// magic checks the file magic and, when it is wrong, tries to name the
// format the file actually has: a clear "this is a safetensors file" saves
// the user a lot of guessing.
func (r *reader) magic() error {
	if r.size == 0 {
		return r.errAt(0, "file is empty, not a GGUF file")
	}
	head, err := r.r.Peek(int(min(r.size, 64)))
	if err != nil && len(head) == 0 {
		return &Error{Path: r.path, Offset: 0, Msg: "reading magic", Err: err}
	}
	if len(head) >= 4 && string(head[:4]) == Magic {
		if r.size < headerSize {
			return r.errAt(r.size, "file truncated: only %d bytes, a GGUF header needs %d", r.size, headerSize)
		}
		_, err := r.bytes(4, "magic")
		return err
	}
	return r.errAt(0, "not a GGUF file: %s", sniff(head))
}

// sniff describes the content of a file that does not start with "GGUF".
func sniff(head []byte) string {
	if len(head) >= 4 {
		// Legacy ggml formats wrote a uint32 magic in little-endian order.
		switch binary.LittleEndian.Uint32(head) {
		case 0x67676d6c:
			return "legacy unversioned GGML file (magic 'ggml'); convert it to GGUF"
		case 0x67676d66:
			return "legacy GGMF file; convert it to GGUF"
		case 0x67676a74:
			return "legacy GGJT file; convert it to GGUF"
		case 0x67676c61:
			return "legacy GGLA LoRA file; convert it to GGUF"
		}
		if string(head[:4]) == "FUGG" {
			return "GGUF magic in reversed byte order"
		}
		if string(head[:4]) == "PK\x03\x04" {
			return "zip archive (a PyTorch .bin/.pt checkpoint?)"
		}
	}
	if len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5 {
		return "Python pickle (a PyTorch checkpoint?)"
	}
	if len(head) >= 9 && head[8] == '{' && binary.LittleEndian.Uint64(head) < 1<<32 {
		return "safetensors file"
	}
	if bytes.HasPrefix(head, []byte("version https://git-lfs")) {
		return "Git LFS pointer, not the model itself (run git lfs pull)"
	}
	if len(head) > 0 && looksText(head) {
		q := head
		if len(q) > 16 {
			q = q[:16]
		}
		return fmt.Sprintf("looks like a text file (starts with %q)", q)
	}
	if len(head) < 4 {
		return fmt.Sprintf("only %d bytes long", len(head))
	}
	return fmt.Sprintf("bad magic %q, expected %q", head[:4], Magic)
}

func looksText(b []byte) bool {
	if !utf8.Valid(b) {
		// The peeked prefix may end inside a multi-byte rune; trim it.
		for i := 0; i < 3 && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
		if !utf8.Valid(b) {
			return false
		}
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

func describeType(vt ValueType, isArray bool) string {
	if isArray {
		return "array of " + vt.String()
	}
	return vt.String()
}

// kv reads one key/value pair.
func (r *reader) kv(i uint64, seen map[string]bool) (KV, error) {
	at := r.pos
	key, err := r.str(fmt.Sprintf("key of metadata entry %d", i))
	if err != nil {
		return KV{}, err
	}
	if key == "" {
		// gguf.cpp asserts (aborts) on empty keys.
		return KV{}, r.errAt(at, "metadata entry %d has an empty key", i)
	}
	if seen[key] {
		return KV{}, r.errAt(at, "duplicate metadata key %q", key)
	}
	tat := r.pos
	t, err := r.u32(fmt.Sprintf("type of key %q", key))
	if err != nil {
		return KV{}, err
	}
	vt := ValueType(t)
	if !vt.Valid() {
		return KV{}, r.errAt(tat, "key %q has invalid value type %d", key, t)
	}
	if vt != ValueArray {
		v, err := r.scalar(vt, key)
		if err != nil {
			return KV{}, err
		}
		return KV{Key: key, Value: v}, nil
	}
	eat := r.pos
	et, err := r.u32(fmt.Sprintf("array element type of key %q", key))
	if err != nil {
		return KV{}, err
	}
	evt := ValueType(et)
	if !evt.Valid() {
		return KV{}, r.errAt(eat, "key %q is an array with invalid element type %d", key, et)
	}
	if evt == ValueArray {
		return KV{}, r.errAt(eat, "key %q is an array of arrays, which llama.cpp does not support", key)
	}
	nat := r.pos
	n, err := r.u64(fmt.Sprintf("array length of key %q", key))
	if err != nil {
		return KV{}, err
	}
	// A string needs at least its 8-byte length; fixed types need their size.
	elem := valueSizes[evt]
	if evt == ValueString {
		elem = 8
	}
	if n > uint64(r.remaining()/elem) {
		return KV{}, r.errAt(nat, "key %q claims %d array elements of type %s, more than the %d bytes left can hold", key, n, evt, r.remaining())
	}
	if n > MaxArrayLen {
		return KV{}, r.errAt(nat, "key %q has %d array elements, more than the limit of %d", key, n, MaxArrayLen)
	}
	v, err := r.array(evt, int(n), key)
	if err != nil {
		return KV{}, err
	}
	return KV{Key: key, Value: v}, nil
}

func (r *reader) scalar(vt ValueType, key string) (any, error) {
	what := fmt.Sprintf("value of key %q", key)
	if vt == ValueString {
		return r.str(what)
	}
	var buf [8]byte
	b := buf[:valueSizes[vt]]
	if err := r.fixed(b, what); err != nil {
		return nil, err
	}
	return decodeScalar(vt, b), nil
}

func decodeScalar(vt ValueType, b []byte) any {
	le := binary.LittleEndian
	switch vt {
	case ValueUint8:
		return b[0]
	case ValueInt8:
		return int8(b[0])
	case ValueUint16:
		return le.Uint16(b)
	case ValueInt16:
		return int16(le.Uint16(b))
	case ValueUint32:
		return le.Uint32(b)
	case ValueInt32:
		return int32(le.Uint32(b))
	case ValueFloat32:
		return math.Float32frombits(le.Uint32(b))
	case ValueBool:
		// gguf.cpp treats any non-zero byte as true.
		return b[0] != 0
	case ValueUint64:
		return le.Uint64(b)
	case ValueInt64:
		return int64(le.Uint64(b))
	case ValueFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil // unreachable: callers pass only fixed-size scalar types
}

// array reads n elements of type vt; the caller has checked that n elements
// fit in the bytes left.
func (r *reader) array(vt ValueType, n int, key string) (any, error) {
	what := fmt.Sprintf("array value of key %q", key)
	if vt == ValueString {
		// Grown by append: n is only bounded by the bytes left, and 16-byte
		// string headers for a bogus n could cost twice the file size.
		s := make([]string, 0, min(n, 1<<16))
		for i := 0; i < n; i++ {
			e, err := r.str(fmt.Sprintf("element %d of key %q", i, key))
			if err != nil {
				return nil, err
			}
			s = append(s, e)
		}
		return s, nil
	}
	b, err := r.bytes(int64(n)*valueSizes[vt], what)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch vt {
	case ValueUint8:
		return b, nil
	case ValueInt8:
		out := make([]int8, n)
		for i := range out {
			out[i] = int8(b[i])
		}
		return out, nil
	case ValueUint16:
		out := make([]uint16, n)
		for i := range out {
			out[i] = le.Uint16(b[2*i:])
		}
		return out, nil
	case ValueInt16:
		out := make([]int16, n)
		for i := range out {
			out[i] = int16(le.Uint16(b[2*i:]))
		}
		return out, nil
	case ValueUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = le.Uint32(b[4*i:])
		}
		return out, nil
	case ValueInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(le.Uint32(b[4*i:]))
		}
		return out, nil
	case ValueFloat32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	case ValueBool:
		out := make([]bool, n)
		for i := range out {
			out[i] = b[i] != 0
		}
		return out, nil
	case ValueUint64:
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out, nil
	case ValueInt64:
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
		return out, nil
	case ValueFloat64:
		out := make([]float64, n)
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return out, nil
	}
	return nil, errors.New("gguf: unreachable array type " + vt.String())
}

// tensorInfo reads one tensor description and returns it with the file
// position of its offset field (for error messages about the offset).
func (r *reader) tensorInfo(i uint64, names map[string]bool) (TensorInfo, int64, error) {
	at := r.pos
	n, err := r.u64(fmt.Sprintf("name length of tensor %d", i))
	if err != nil {
		return TensorInfo{}, 0, err
	}
	// Checked before reading so a huge length never allocates.
	if n >= MaxNameLen {
		return TensorInfo{}, 0, r.errAt(at, "tensor %d name is %d bytes long, the limit is %d", i, n, MaxNameLen-1)
	}
	b, err := r.bytes(int64(n), fmt.Sprintf("name of tensor %d", i))
	if err != nil {
		return TensorInfo{}, 0, err
	}
	name := string(b)
	if name == "" {
		return TensorInfo{}, 0, r.errAt(at, "tensor %d has an empty name", i)
	}
	if bytes.IndexByte(b, 0) >= 0 {
		// ggml stores names NUL-terminated, so an embedded NUL silently
		// truncates the name and can create duplicates gguf.cpp misses.
		return TensorInfo{}, 0, r.errAt(at, "tensor %d name %q contains a NUL byte", i, name)
	}
	if names[name] {
		return TensorInfo{}, 0, r.errAt(at, "duplicate tensor name %q", name)
	}

	dat := r.pos
	nd, err := r.u32(fmt.Sprintf("dimension count of tensor %q", name))
	if err != nil {
		return TensorInfo{}, 0, err
	}
	if nd < 1 || nd > MaxDims {
		return TensorInfo{}, 0, r.errAt(dat, "tensor %q has %d dimensions, must be 1 to %d", name, nd, MaxDims)
	}
	shape := make([]uint64, nd)
	ne := [MaxDims]int64{1, 1, 1, 1}
	for j := range shape {
		dimAt := r.pos
		d, err := r.u64(fmt.Sprintf("dimension %d of tensor %q", j, name))
		if err != nil {
			return TensorInfo{}, 0, err
		}
		if d == 0 {
			return TensorInfo{}, 0, r.errAt(dimAt, "tensor %q dimension %d is 0", name, j)
		}
		if d > math.MaxInt64 {
			return TensorInfo{}, 0, r.errAt(dimAt, "tensor %q dimension %d is %d, larger than INT64_MAX", name, j, d)
		}
		shape[j] = d
		ne[j] = int64(d)
	}
	// The same test as gguf.cpp, so exactly the shapes it accepts pass.
	if math.MaxInt64/ne[1] <= ne[0] ||
		math.MaxInt64/ne[2] <= ne[0]*ne[1] ||
		math.MaxInt64/ne[3] <= ne[0]*ne[1]*ne[2] {
		return TensorInfo{}, 0, r.errAt(dat, "tensor %q with shape %v has too many elements (>= INT64_MAX)", name, shape)
	}

	tat := r.pos
	tv, err := r.u32(fmt.Sprintf("type of tensor %q", name))
	if err != nil {
		return TensorInfo{}, 0, err
	}
	typ := Type(tv)
	switch {
	case typ.Removed():
		return TensorInfo{}, 0, r.errAt(tat, "tensor %q has type %d (%s), which ggml no longer supports", name, tv, typ)
	case !typ.Known():
		return TensorInfo{}, 0, r.errAt(tat, "tensor %q has unknown type %d", name, tv)
	}
	if ne[0]%typ.BlockSize() != 0 {
		return TensorInfo{}, 0, r.errAt(tat, "tensor %q of type %s has %d elements per row, not a multiple of the block size %d", name, typ, ne[0], typ.BlockSize())
	}

	oat := r.pos
	off, err := r.u64(fmt.Sprintf("data offset of tensor %q", name))
	if err != nil {
		return TensorInfo{}, 0, err
	}
	return TensorInfo{Name: name, Shape: shape, Type: typ, Offset: off}, oat, nil
}
