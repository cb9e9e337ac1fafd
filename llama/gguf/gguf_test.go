package gguf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const storiesPath = "../../../shared/data/models/stories260K.gguf"

func TestReadStories260K(t *testing.T) {
	if _, err := os.Stat(storiesPath); err != nil {
		t.Skipf("test model not available: %v", err)
	}
	f, err := Read(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Architecture(); got != "llama" {
		t.Errorf("Architecture() = %q, want llama", got)
	}
	if f.Version != 3 || f.Alignment != 32 {
		t.Errorf("version %d alignment %d, want 3 and 32", f.Version, f.Alignment)
	}
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) != 512 {
		t.Fatalf("tokens: ok=%v len=%d, want 512", ok, len(toks))
	}
	if toks[0] != "<unk>" || toks[1] != "<s>" || toks[2] != "</s>" || toks[3] != "<0x00>" {
		t.Errorf("first tokens %q", toks[:4])
	}
	if m, _ := f.String("tokenizer.ggml.model"); m != "llama" {
		t.Errorf("tokenizer model %q", m)
	}
	uints := []struct {
		key  string
		want uint64
	}{
		{"llama.embedding_length", 64},
		{"llama.block_count", 5},
		{"llama.attention.head_count", 8},
		{"llama.attention.head_count_kv", 4},
		{"llama.context_length", 512},
		{"tokenizer.ggml.bos_token_id", 1},
	}
	for _, c := range uints {
		if got, ok := f.Uint(c.key); !ok || got != c.want {
			t.Errorf("Uint(%q) = %d, %v; want %d", c.key, got, ok, c.want)
		}
	}
	if eps, ok := f.Float("llama.attention.layer_norm_rms_epsilon"); !ok || math.Abs(eps-1e-5) > 1e-9 {
		t.Errorf("rms eps = %v, %v", eps, ok)
	}
	if len(f.Tensors) != 48 {
		t.Errorf("%d tensors, want 48", len(f.Tensors))
	}
	tensors := []struct {
		name  string
		shape []uint64
	}{
		{"token_embd.weight", []uint64{64, 512}},
		{"blk.0.attn_q.weight", []uint64{64, 64}},
		{"blk.0.attn_k.weight", []uint64{64, 32}},
		{"blk.4.ffn_down.weight", []uint64{172, 64}},
		{"output_norm.weight", []uint64{64}},
		{"output.weight", []uint64{64, 512}},
	}
	for _, c := range tensors {
		ti, ok := f.Tensor(c.name)
		if !ok {
			t.Errorf("tensor %q missing", c.name)
			continue
		}
		if !reflect.DeepEqual(ti.Shape, c.shape) || ti.Type != TypeF32 {
			t.Errorf("tensor %q: shape %v type %s, want %v F32", c.name, ti.Shape, ti.Type, c.shape)
		}
	}
	last := f.Tensors[len(f.Tensors)-1]
	if end := f.DataOffset + int64(last.Offset) + last.Size(); end > f.FileSize {
		t.Errorf("last tensor ends at %d > file size %d", end, f.FileSize)
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Error("Tensor(nope) found")
	}
}

func TestTypeTraits(t *testing.T) {
	cases := []struct {
		typ         Type
		name        string
		block, size int64
	}{
		{TypeF32, "F32", 1, 4}, {TypeF16, "F16", 1, 2}, {TypeBF16, "BF16", 1, 2},
		{TypeQ4_0, "Q4_0", 32, 18}, {TypeQ4_1, "Q4_1", 32, 20}, {TypeQ5_0, "Q5_0", 32, 22},
		{TypeQ5_1, "Q5_1", 32, 24}, {TypeQ8_0, "Q8_0", 32, 34}, {TypeQ8_1, "Q8_1", 32, 36},
		{TypeQ2_K, "Q2_K", 256, 84}, {TypeQ3_K, "Q3_K", 256, 110}, {TypeQ4_K, "Q4_K", 256, 144},
		{TypeQ5_K, "Q5_K", 256, 176}, {TypeQ6_K, "Q6_K", 256, 210}, {TypeQ8_K, "Q8_K", 256, 292},
		{TypeIQ2_XXS, "IQ2_XXS", 256, 66}, {TypeIQ2_XS, "IQ2_XS", 256, 74}, {TypeIQ2_S, "IQ2_S", 256, 82},
		{TypeIQ3_XXS, "IQ3_XXS", 256, 98}, {TypeIQ3_S, "IQ3_S", 256, 110}, {TypeIQ1_S, "IQ1_S", 256, 50},
		{TypeIQ1_M, "IQ1_M", 256, 56}, {TypeIQ4_NL, "IQ4_NL", 32, 18}, {TypeIQ4_XS, "IQ4_XS", 256, 136},
		{TypeTQ1_0, "TQ1_0", 256, 54}, {TypeTQ2_0, "TQ2_0", 256, 66}, {TypeMXFP4, "MXFP4", 32, 17},
		{TypeI8, "I8", 1, 1}, {TypeI16, "I16", 1, 2}, {TypeI32, "I32", 1, 4}, {TypeI64, "I64", 1, 8},
		{TypeF64, "F64", 1, 8},
	}
	for _, c := range cases {
		if c.typ.String() != c.name || c.typ.BlockSize() != c.block || c.typ.TypeSize() != c.size || !c.typ.Known() {
			t.Errorf("%d: got %s block %d size %d known %v; want %s %d %d", c.typ, c.typ, c.typ.BlockSize(), c.typ.TypeSize(), c.typ.Known(), c.name, c.block, c.size)
		}
	}
	for _, typ := range []Type{4, 5, 31, 32, 33, 36, 37, 38} {
		if typ.Known() || !typ.Removed() || typ.BlockSize() != 0 {
			t.Errorf("type %d (%s) should be removed", typ, typ)
		}
	}
	if Type(40).Known() || Type(40).Removed() || Type(1000).String() != "Type(1000)" {
		t.Error("type 40 should be unknown")
	}
	if got := TypeQ4_K.RowSize(512); got != 288 {
		t.Errorf("Q4_K.RowSize(512) = %d", got)
	}
	if got := TypeQ4_K.RowSize(100); got != -1 {
		t.Errorf("Q4_K.RowSize(100) = %d, want -1", got)
	}
}

// allValues has one key per GGUF value type, scalar and array.
func allValues() []KV {
	return []KV{
		{"u8", uint8(200)}, {"i8", int8(-5)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
		{"u32", uint32(4000000000)}, {"i32", int32(-2000000000)}, {"f32", float32(1.5)},
		{"bool.t", true}, {"bool.f", false}, {"str", "héllo\x00world"}, {"str.empty", ""},
		{"u64", uint64(1 << 63)}, {"i64", int64(-1 << 62)}, {"f64", math.Pi},
		{"a.u8", []uint8{1, 2, 255}}, {"a.i8", []int8{-1, 0, 1}}, {"a.u16", []uint16{1, 65535}},
		{"a.i16", []int16{-1, 1}}, {"a.u32", []uint32{7}}, {"a.i32", []int32{-7, 7}},
		{"a.f32", []float32{0.25, -1e30}}, {"a.bool", []bool{true, false, true}},
		{"a.str", []string{"a", "", "▁b"}}, {"a.u64", []uint64{1, 1 << 40}},
		{"a.i64", []int64{-1 << 40}}, {"a.f64", []float64{1e300, -0.5}}, {"a.empty", []string{}},
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	q4k := bytes.Repeat([]byte{0xAB}, 2*144)
	f32 := EncodeF32([]float32{1, 2, 3, 4, 5, 6, 7})
	for _, align := range []uint32{0, 64, 1} {
		w := NewWriter()
		kvs := allValues()
		if align != 0 {
			kvs = append([]KV{{KeyAlignment, align}}, kvs...)
		}
		for _, kv := range kvs {
			if err := w.Set(kv.Key, kv.Value); err != nil {
				t.Fatal(err)
			}
		}
		data := map[string][]byte{
			"f32":  f32,
			"f16":  EncodeF16([]float32{1, -2, 3}),
			"q8":   must(QuantizeQ8_0(make([]float32, 64))),
			"q4":   must(QuantizeQ4_0(make([]float32, 32*3))),
			"q4k":  q4k,
			"i32":  []byte{1, 0, 0, 0},
			"func": EncodeF32([]float32{9, 8}),
		}
		mustNil(t, w.AddTensor("f32", TypeF32, []uint64{7}, data["f32"]))
		mustNil(t, w.AddTensor("f16", TypeF16, []uint64{3, 1, 1}, data["f16"]))
		mustNil(t, w.AddTensor("q8", TypeQ8_0, []uint64{32, 2}, data["q8"]))
		mustNil(t, w.AddTensor("q4", TypeQ4_0, []uint64{32, 1, 3}, data["q4"]))
		mustNil(t, w.AddTensor("q4k", TypeQ4_K, []uint64{256, 1, 1, 2}, data["q4k"]))
		mustNil(t, w.AddTensor("i32", TypeI32, []uint64{1}, data["i32"]))
		mustNil(t, w.AddTensorFunc("func", TypeF32, []uint64{2}, func(w io.Writer) error {
			_, err := w.Write(data["func"])
			return err
		}))
		path := filepath.Join(t.TempDir(), "rt.gguf")
		if err := w.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		f, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f.KVs, kvs) {
			t.Errorf("align %d: KVs differ:\n got %#v\nwant %#v", align, f.KVs, kvs)
		}
		wantAlign := uint64(align)
		if align == 0 {
			wantAlign = DefaultAlignment
		}
		if f.Alignment != wantAlign || f.DataOffset%int64(wantAlign) != 0 {
			t.Errorf("alignment %d data offset %d, want alignment %d", f.Alignment, f.DataOffset, wantAlign)
		}
		raw, _ := os.ReadFile(path)
		for _, ti := range f.Tensors {
			start := f.DataOffset + int64(ti.Offset)
			got := raw[start : start+ti.Size()]
			if !bytes.Equal(got, data[ti.Name]) {
				t.Errorf("tensor %s data differs", ti.Name)
			}
		}
		last := f.Tensors[len(f.Tensors)-1]
		if want := f.DataOffset + int64(pad(last.Offset+uint64(last.Size()), wantAlign)); f.FileSize != want {
			t.Errorf("file size %d, want %d (padding as gguf.cpp)", f.FileSize, want)
		}
		if v, ok := f.Uint("i32"); ok {
			t.Errorf("Uint of negative int32 = %d, ok", v)
		}
		if v, ok := f.Uint("u16"); !ok || v != 60000 {
			t.Errorf("Uint(u16) = %d %v", v, ok)
		}
		if v, ok := f.Float("f64"); !ok || v != math.Pi {
			t.Errorf("Float(f64) = %v %v", v, ok)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWriterErrors(t *testing.T) {
	cases := []struct {
		name string
		do   func(w *Writer) error
	}{
		{"unsupported value", func(w *Writer) error { return w.Set("k", 5) }},
		{"nested array", func(w *Writer) error { return w.Set("k", [][]int32{{1}}) }},
		{"empty key", func(w *Writer) error { return w.Set("", "x") }},
		{"bad alignment", func(w *Writer) error { return w.Set(KeyAlignment, uint32(48)) }},
		{"alignment type", func(w *Writer) error { return w.Set(KeyAlignment, uint64(32)) }},
		{"short data", func(w *Writer) error { return w.AddTensor("t", TypeF32, []uint64{4}, make([]byte, 15)) }},
		{"bad block", func(w *Writer) error { return w.AddTensor("t", TypeQ8_0, []uint64{16}, make([]byte, 17)) }},
		{"zero dim", func(w *Writer) error { return w.AddTensor("t", TypeF32, []uint64{0}, nil) }},
		{"five dims", func(w *Writer) error { return w.AddTensor("t", TypeF32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)) }},
		{"removed type", func(w *Writer) error { return w.AddTensor("t", Type(4), []uint64{32}, nil) }},
		{"long name", func(w *Writer) error {
			return w.AddTensor(strings.Repeat("x", 64), TypeF32, []uint64{1}, make([]byte, 4))
		}},
		{"duplicate", func(w *Writer) error {
			w.AddTensor("t", TypeF32, []uint64{1}, make([]byte, 4))
			return w.AddTensor("t", TypeF32, []uint64{1}, make([]byte, 4))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := NewWriter()
			if err := c.do(w); err == nil {
				t.Fatal("no error")
			}
			path := filepath.Join(t.TempDir(), "x.gguf")
			if err := w.WriteFile(path); err == nil {
				t.Fatal("WriteFile succeeded after an error")
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("file exists after failed write: %v", err)
			}
		})
	}
}

func TestWriterFuncSize(t *testing.T) {
	for _, n := range []int{0, 7, 9, 100} {
		w := NewWriter()
		mustNil(t, w.AddTensorFunc("t", TypeF32, []uint64{2}, func(w io.Writer) error {
			_, err := w.Write(make([]byte, n))
			return err
		}))
		dir := t.TempDir()
		path := filepath.Join(dir, "x.gguf")
		err := w.WriteFile(path)
		if err == nil {
			t.Errorf("%d bytes: no error", n)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%d bytes: directory not clean after failure: %v", n, ents)
		}
	}
}

// raw builds GGUF bytes field by field, so tests can produce exactly the
// malformed files they want.
type raw struct{ bytes.Buffer }

func (b *raw) u32(v uint32) *raw { b.Write(binary.LittleEndian.AppendUint32(nil, v)); return b }
func (b *raw) u64(v uint64) *raw { b.Write(binary.LittleEndian.AppendUint64(nil, v)); return b }
func (b *raw) str(s string) *raw { b.u64(uint64(len(s))); b.WriteString(s); return b }
func (b *raw) hdr(version uint32, nt, nkv uint64) *raw {
	b.WriteString("GGUF")
	return b.u32(version).u64(nt).u64(nkv)
}
func (b *raw) kvU32(k string, v uint32) *raw { return b.str(k).u32(uint32(ValueUint32)).u32(v) }
func (b *raw) tensor(name string, typ Type, off uint64, dims ...uint64) *raw {
	b.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		b.u64(d)
	}
	return b.u32(uint32(typ)).u64(off)
}

// data pads to 32 and appends n bytes of tensor data.
func (b *raw) data(n int) []byte {
	b.Write(make([]byte, int(pad(uint64(b.Len()), 32))-b.Len()+n))
	return b.Bytes()
}

func validSmall(t testing.TB) []byte {
	w := NewWriter()
	for _, kv := range allValues() {
		mustNil(t, w.Set(kv.Key, kv.Value))
	}
	mustNil(t, w.Set("tokenizer.ggml.tokens", []string{"a", "b", "c"}))
	mustNil(t, w.Set("tokenizer.ggml.scores", []float32{0, 1, 2}))
	mustNil(t, w.AddTensor("a", TypeF32, []uint64{5, 2}, make([]byte, 40)))
	mustNil(t, w.AddTensor("b", TypeQ8_0, []uint64{32}, make([]byte, 34)))
	mustNil(t, w.AddTensor("c", TypeF16, []uint64{3}, make([]byte, 6)))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readBytes writes b to a temp file and reads it.
func readBytes(t testing.TB, dir string, b []byte) (string, *File, error) {
	path := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	return path, f, err
}

// checkErr asserts err is a *Error for path whose text contains want.
func checkErr(t *testing.T, path string, err error, want string) {
	t.Helper()
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T) is not a *gguf.Error", err, err)
	}
	if ge.Path != path || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not mention %q", err, want)
	}
}

func TestReadMalformed(t *testing.T) {
	kvStr := func(b *raw, k, v string) *raw { return b.str(k).u32(uint32(ValueString)).str(v) }
	cases := []struct {
		name string
		file func() []byte
		want string
	}{
		{"empty", func() []byte { return nil }, "file is empty"},
		{"short", func() []byte { return []byte("GG") }, "not a GGUF file"},
		{"magic only", func() []byte { return []byte("GGUF\x03\x00") }, "truncated"},
		{"wrong magic", func() []byte { return append([]byte("GGUX"), make([]byte, 40)...) }, "bad magic"},
		{"ggml legacy", func() []byte { return append([]byte("lmgg"), make([]byte, 40)...) }, "legacy unversioned GGML"},
		{"ggjt legacy", func() []byte { return append([]byte("tjgg"), make([]byte, 40)...) }, "GGJT"},
		{"safetensors", func() []byte {
			return append(binary.LittleEndian.AppendUint64(nil, 20), []byte(`{"__metadata__":{}}`)...)
		}, "safetensors"},
		{"zip", func() []byte { return append([]byte("PK\x03\x04"), make([]byte, 40)...) }, "zip"},
		{"pickle", func() []byte { return append([]byte{0x80, 0x02}, make([]byte, 40)...) }, "pickle"},
		{"text", func() []byte { return []byte("<!DOCTYPE html>\n<html>hello</html>\n") }, "text file"},
		{"lfs pointer", func() []byte {
			return []byte("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
		}, "Git LFS"},
		{"version 0", func() []byte { return new(raw).hdr(0, 0, 0).Bytes() }, "version 0"},
		{"version 1", func() []byte { return new(raw).hdr(1, 0, 0).Bytes() }, "version 1"},
		{"version 99", func() []byte { return new(raw).hdr(99, 0, 0).Bytes() }, "version 99"},
		{"big endian", func() []byte { return new(raw).hdr(3<<24, 0, 0).Bytes() }, "big-endian"},
		{"absurd n_tensors", func() []byte { return new(raw).hdr(3, 1<<62, 0).data(64) }, "claims 4611686018427387904 tensors"},
		{"negative n_tensors", func() []byte { return new(raw).hdr(3, 1<<63+5, 0).data(64) }, "tensors"},
		{"absurd n_kv", func() []byte { return new(raw).hdr(3, 0, 1<<62).data(64) }, "key/value pairs"},
		{"absurd key length", func() []byte { return new(raw).hdr(3, 0, 1).u64(1 << 62).u32(0).u32(0).Bytes() }, "length 4611686018427387904 exceeds"},
		{"absurd string length", func() []byte {
			return new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueString)).u64(1 << 62).Bytes()
		}, "exceeds"},
		{"absurd array length", func() []byte {
			return new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueUint32)).u64(1 << 62).Bytes()
		}, "claims 4611686018427387904 array elements"},
		{"absurd string array length", func() []byte {
			return new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(1 << 40).u64(0).Bytes()
		}, "array elements"},
		{"array string element too long", func() []byte {
			return new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(1).u64(1000).Bytes()
		}, `element 0 of key "k" length 1000 exceeds`},
		{"bad value type", func() []byte { return new(raw).hdr(3, 0, 1).str("k").u32(13).u32(0).Bytes() }, "invalid value type 13"},
		{"bad array type", func() []byte {
			return new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(77).u64(0).Bytes()
		}, "invalid element type 77"},
		{"array of arrays", func() []byte {
			return new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueArray)).u64(0).Bytes()
		}, "array of arrays"},
		{"empty key", func() []byte { return new(raw).hdr(3, 0, 1).kvU32("", 1).Bytes() }, "empty key"},
		{"duplicate key", func() []byte { return new(raw).hdr(3, 0, 2).kvU32("k", 1).kvU32("k", 2).Bytes() }, `duplicate metadata key "k"`},
		{"alignment not power of 2", func() []byte { return new(raw).hdr(3, 0, 1).kvU32(KeyAlignment, 48).Bytes() }, "not a power of 2"},
		{"alignment zero", func() []byte { return new(raw).hdr(3, 0, 1).kvU32(KeyAlignment, 0).Bytes() }, "not a power of 2"},
		{"alignment wrong type", func() []byte {
			return new(raw).hdr(3, 0, 1).str(KeyAlignment).u32(uint32(ValueUint64)).u64(32).Bytes()
		}, "must be a uint32"},
		{"tokens not strings", func() []byte {
			return new(raw).hdr(3, 0, 1).str("tokenizer.ggml.tokens").u32(uint32(ValueArray)).u32(uint32(ValueInt32)).u64(1).u32(0).Bytes()
		}, "must be an array of strings"},
		{"duplicate tokens", func() []byte {
			return new(raw).hdr(3, 0, 1).str("tokenizer.ggml.tokens").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(2).str("a").str("a").Bytes()
		}, "duplicate tokens"},
		{"short scores", func() []byte {
			b := new(raw).hdr(3, 0, 2).str("tokenizer.ggml.tokens").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(2).str("a").str("b")
			return b.str("tokenizer.ggml.scores").u32(uint32(ValueArray)).u32(uint32(ValueFloat32)).u64(1).u32(0).Bytes()
		}, "has 1 entries but there are 2 tokens"},
		{"general.type not string", func() []byte { return new(raw).hdr(3, 0, 1).kvU32("general.type", 1).Bytes() }, "must be a string"},
		{"lora alpha not f32", func() []byte { return new(raw).hdr(3, 0, 1).kvU32("adapter.lora.alpha", 1).Bytes() }, "must be a float32"},
		{"n_dims 0", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", TypeF32, 0).data(32) }, "has 0 dimensions"},
		{"n_dims 5", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", TypeF32, 0, 1, 1, 1, 1, 1).data(32) }, "has 5 dimensions"},
		{"zero dim", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", TypeF32, 0, 4, 0).data(32) }, "dimension 1 is 0"},
		{"negative dim", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", TypeF32, 0, 1<<63).data(32) }, "larger than INT64_MAX"},
		{"overflowing dims", func() []byte {
			return new(raw).hdr(3, 1, 0).tensor("t", TypeF32, 0, 1<<32, 1<<32).data(32)
		}, "too many elements"},
		{"overflowing 4 dims", func() []byte {
			return new(raw).hdr(3, 1, 0).tensor("t", TypeI8, 0, 1<<20, 1<<20, 1<<20, 1<<3).data(32)
		}, "too many elements"},
		{"huge bytes", func() []byte {
			return new(raw).hdr(3, 1, 0).tensor("t", TypeF64, 0, 1<<61, 2).data(32)
		}, "too large"},
		{"unknown type", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", Type(40), 0, 32).data(32) }, "unknown type 40"},
		{"huge type", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", Type(0xFFFFFFFF), 0, 32).data(32) }, "unknown type"},
		{"removed type", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", Type(31), 0, 32).data(32) }, "no longer supports"},
		{"block size", func() []byte { return new(raw).hdr(3, 1, 0).tensor("t", TypeQ8_0, 0, 16).data(34) }, "not a multiple of the block size 32"},
		{"long name", func() []byte { return new(raw).hdr(3, 1, 0).tensor(strings.Repeat("n", 64), TypeF32, 0, 1).data(32) }, "limit is 63"},
		{"absurd name", func() []byte { return new(raw).hdr(3, 1, 0).u64(1 << 60).data(64) }, "name is 1152921504606846976 bytes"},
		{"empty name", func() []byte { return new(raw).hdr(3, 1, 0).tensor("", TypeF32, 0, 1).data(32) }, "empty name"},
		{"NUL in name", func() []byte { return new(raw).hdr(3, 1, 0).tensor("a\x00b", TypeF32, 0, 1).data(32) }, "NUL byte"},
		{"duplicate tensor", func() []byte {
			return new(raw).hdr(3, 2, 0).tensor("t", TypeF32, 0, 8).tensor("t", TypeF32, 32, 8).data(64)
		}, `duplicate tensor name "t"`},
		{"misaligned offset", func() []byte {
			return new(raw).hdr(3, 2, 0).tensor("a", TypeF32, 0, 8).tensor("b", TypeF32, 36, 8).data(96)
		}, "not a multiple of the alignment 32"},
		{"gap offset", func() []byte {
			return new(raw).hdr(3, 2, 0).tensor("a", TypeF32, 0, 8).tensor("b", TypeF32, 64, 8).data(128)
		}, `tensor "b" has data offset 64, expected 32`},
		{"overlapping offset", func() []byte {
			return new(raw).hdr(3, 2, 0).tensor("a", TypeF32, 0, 16).tensor("b", TypeF32, 32, 8).data(128)
		}, `tensor "b" has data offset 32, expected 64`},
		{"out of order", func() []byte {
			return new(raw).hdr(3, 2, 0).tensor("a", TypeF32, 32, 8).tensor("b", TypeF32, 0, 8).data(64)
		}, `tensor "a" has data offset 32, expected 0`},
		{"first offset nonzero", func() []byte { return new(raw).hdr(3, 1, 0).tensor("a", TypeF32, 32, 8).data(128) }, "expected 0"},
		{"truncated data", func() []byte { return new(raw).hdr(3, 1, 0).tensor("a", TypeF32, 0, 100).data(399) }, "past end of file"},
		{"no data at all", func() []byte { return new(raw).hdr(3, 1, 0).tensor("a", TypeF32, 0, 100).Bytes() }, "past end of file"},
		{"missing kv", func() []byte { return kvStr(new(raw).hdr(3, 0, 2), "a", "b").Bytes() }, "key/value pairs"},
		{"truncated kv", func() []byte {
			return kvStr(new(raw).hdr(3, 0, 2), "a", "b").str("k2").u32(uint32(ValueUint64)).u32(0).Bytes()
		}, "file truncated: value of key \"k2\" needs 8 bytes"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path, f, err := readBytes(t, dir, c.file())
			if err == nil {
				t.Fatalf("accepted: %+v", f)
			}
			checkErr(t, path, err, c.want)
		})
	}
}

func TestReadErrorFormat(t *testing.T) {
	dir := t.TempDir()
	b := new(raw).hdr(3, 1, 0).tensor("blk.0.attn_q.weight", TypeF32, 0, 1000).data(100)
	path, _, err := readBytes(t, dir, b)
	want := "gguf: " + path + ": at byte 96: tensor \"blk.0.attn_q.weight\" data ends at 4096, past end of file (196 bytes); the file is truncated"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	_, err = Read(filepath.Join(dir, "missing.gguf"))
	var ge *Error
	if !errors.As(err, &ge) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err = Read(dir)
	if !errors.As(err, &ge) {
		t.Errorf("directory: %v", err)
	}
}

func TestReadTruncated(t *testing.T) {
	full := validSmall(t)
	dir := t.TempDir()
	_, f, err := readBytes(t, dir, full)
	if err != nil {
		t.Fatal(err)
	}
	last := f.Tensors[len(f.Tensors)-1]
	dataEnd := int(f.DataOffset) + int(last.Offset) + int(last.Size())
	// Every cut before the end of the last tensor's data must fail; cutting
	// only the trailing padding is still a valid file (gguf.cpp agrees).
	for n := 0; n < dataEnd; n++ {
		if n > int(f.DataOffset)+8 && n%7 != 0 && n != dataEnd-1 {
			continue // sample the data region, test every header byte
		}
		path, _, err := readBytes(t, dir, full[:n])
		if err == nil {
			t.Fatalf("truncated at %d of %d: accepted", n, len(full))
		}
		var ge *Error
		if !errors.As(err, &ge) || ge.Path != path {
			t.Fatalf("truncated at %d: %v", n, err)
		}
	}
	for n := dataEnd; n <= len(full); n++ {
		if _, _, err := readBytes(t, dir, full[:n]); err != nil {
			t.Errorf("cut at %d (data ends at %d): %v", n, dataEnd, err)
		}
	}
}

func TestReadCorruptedBytes(t *testing.T) {
	// Flip every header byte to a few values: whatever Read says, it must
	// not panic, and errors must be *Error.
	full := validSmall(t)
	dir := t.TempDir()
	_, f, err := readBytes(t, dir, full)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(full))
	for i := 0; i < int(f.DataOffset); i++ {
		for _, v := range []byte{0x00, 0xFF, 0x80, full[i] + 1} {
			copy(buf, full)
			buf[i] = v
			_, _, err := readBytes(t, dir, buf)
			var ge *Error
			if err != nil && !errors.As(err, &ge) {
				t.Fatalf("byte %d = %#x: %v is not *Error", i, v, err)
			}
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add(validSmall(f))
	f.Add(new(raw).hdr(3, 1, 0).tensor("a", TypeF32, 0, 8).data(32))
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// In memory rather than through a file: the same parser, and
		// thousands of times faster to fuzz. Read's file handling is
		// covered by the other tests.
		const path = "fuzz.gguf"
		file, err := parse(path, bufio.NewReader(bytes.NewReader(b)), int64(len(b)))
		if err != nil {
			var ge *Error
			if !errors.As(err, &ge) || ge.Path != path {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		// Invariants of an accepted file, as llama.cpp relies on them.
		for _, ti := range file.Tensors {
			if ti.Size() < 0 || file.DataOffset+int64(ti.Offset)+ti.Size() > int64(len(b)) {
				t.Fatalf("accepted tensor %q outside the file", ti.Name)
			}
			if len(ti.Name) >= MaxNameLen || len(ti.Shape) < 1 || len(ti.Shape) > MaxDims {
				t.Fatalf("accepted bad tensor %+v", ti)
			}
		}
	})
}

func TestReadLimits(t *testing.T) {
	// Sparse files: large enough that the remaining-bytes check passes, so
	// only the explicit limits can reject them, without using disk space.
	cases := []struct {
		name string
		head []byte
		want string
	}{
		{"array", new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueUint8)).u64(MaxArrayLen + 1).Bytes(), "more than the limit"},
		{"string", new(raw).hdr(3, 0, 1).str("k").u32(uint32(ValueString)).u64(MaxStringLen + 1).Bytes(), "exceeds the limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "big.gguf")
			if err := os.WriteFile(path, c.head, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, MaxStringLen+MaxArrayLen+1024); err != nil {
				t.Skipf("cannot make a sparse file: %v", err)
			}
			_, err := Read(path)
			checkErr(t, path, err, c.want)
		})
	}
}

// TestRewriteStoriesIdentical rewrites the real model with Writer, copying
// its metadata and tensor data: the output must be byte-identical, which
// checks the writer's layout and padding against a file made by llama.cpp's
// tooling.
func TestRewriteStoriesIdentical(t *testing.T) {
	orig, err := os.ReadFile(storiesPath)
	if err != nil {
		t.Skipf("test model not available: %v", err)
	}
	f, err := Read(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter()
	for _, kv := range f.KVs {
		mustNil(t, w.Set(kv.Key, kv.Value))
	}
	for _, ti := range f.Tensors {
		start := f.DataOffset + int64(ti.Offset)
		mustNil(t, w.AddTensor(ti.Name, ti.Type, ti.Shape, orig[start:start+ti.Size()]))
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	got := buf.Bytes()
	if !bytes.Equal(got, orig) {
		i := 0
		for i < len(got) && i < len(orig) && got[i] == orig[i] {
			i++
		}
		t.Errorf("rewritten file differs at byte %d (lengths %d and %d)", i, len(got), len(orig))
	}
}
