package hf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
)

// rawSafetensors assembles a file from a header text and data bytes, as the
// reference writer lays it out: u64 little-endian length, JSON, data.
func rawSafetensors(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func writeRaw(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSafetensorsRoundTrip writes F32, F16 and BF16 tensors with metadata
// and reads them back.
func TestSafetensorsRoundTrip(t *testing.T) {
	x := []float32{1, -2, 0.5, 3.25, -0.125, 7}
	bf := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(bf[2*i:], uint16(gguf.EncodeF32([]float32{v})[2])|uint16(gguf.EncodeF32([]float32{v})[3])<<8)
	}
	in := []TensorData{
		{Name: "b.weight", DType: F16, Shape: []int64{3, 2}, Data: gguf.EncodeF16(x)},
		{Name: "a.weight", DType: F32, Shape: []int64{2, 3}, Data: gguf.EncodeF32(x)},
		{Name: "c.weight", DType: BF16, Shape: []int64{6}, Data: bf},
		{Name: "empty", DType: F32, Shape: []int64{0, 4}, Data: nil},
	}
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteSafetensors(p, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	st, err := ReadSafetensors(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.DataOffset%8 != 0 || st.Metadata["format"] != "pt" || len(st.Tensors) != 4 {
		t.Fatalf("header: data offset %d, metadata %v, %d tensors", st.DataOffset, st.Metadata, len(st.Tensors))
	}
	f, _ := os.Open(p)
	defer f.Close()
	for _, want := range in {
		got, ok := st.Tensor(want.Name)
		if !ok || got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) {
			t.Fatalf("%s: %+v", want.Name, got)
		}
		data, err := st.ReadData(f, want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want.Data) {
			t.Fatalf("%s: data differs", want.Name)
		}
		if g, _ := dtypeOf(mustType(t, got.DType)); g != got.DType {
			t.Fatalf("%s: dtype %s does not map back", want.Name, got.DType)
		}
	}
}

func mustType(t *testing.T, d DType) gguf.Type {
	typ, ok := d.GGUFType()
	if !ok {
		t.Fatalf("no GGUF type for %s", d)
	}
	return typ
}

// TestReadSafetensorsMalformed checks each header rule: the error must name
// the file, the tensor where there is one, the byte offset and the problem.
func TestReadSafetensorsMalformed(t *testing.T) {
	d16 := make([]byte, 16)
	for _, tc := range []struct {
		name   string
		file   []byte
		tensor string
		want   string
	}{
		{"short file", []byte{1, 2, 3}, "", "too short"},
		{"length past end", append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...), "", "exceeds the 2 bytes"},
		{"length over limit", append(binary.LittleEndian.AppendUint64(nil, MaxSafetensorsHeader+1), "{}"...), "", "exceeds the limit"},
		{"not json", rawSafetensors(`{"a": nope}`, nil), "a", "not valid JSON"},
		{"not an object", rawSafetensors(`[1, 2]`, nil), "", "does not start with '{'"},
		{"trailing garbage", rawSafetensors(`{}xx`, nil), "", "after the header object"},
		{"unknown dtype", rawSafetensors(`{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}`, d16), "w", "dtype \"F8_E4M3\" is not supported"},
		{"missing field", rawSafetensors(`{"w":{"dtype":"F32","shape":[2]}}`, d16), "w", "must have dtype, shape and data_offsets"},
		{"unknown field", rawSafetensors(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, d16), "w", "unknown field"},
		{"size mismatch", rawSafetensors(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, d16), "w", "needs 12 bytes"},
		{"negative dim", rawSafetensors(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, d16), "w", "negative dimension"},
		{"overflow", rawSafetensors(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, d16), "w", "overflows"},
		{"past data", rawSafetensors(`{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}`, d16), "w", "past the data section"},
		{"reversed range", rawSafetensors(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}`, d16), "w", "is not a range"},
		{"overlap", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[4],"data_offsets":[4,12]}}`, d16), "b", "overlaps tensor \"a\""},
		{"duplicate", rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, d16), "a", "duplicate tensor name"},
		{"bad metadata", rawSafetensors(`{"__metadata__":{"format":1}}`, nil), "", "__metadata__"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRaw(t, tc.file)
			_, err := ReadSafetensors(p)
			var se *SafetensorsError
			if !errors.As(err, &se) {
				t.Fatalf("error %v, want a *SafetensorsError", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, p) || !strings.Contains(msg, tc.want) || se.Tensor != tc.tensor {
				t.Fatalf("error %q (tensor %q), want one naming %s, tensor %q and %q", msg, se.Tensor, p, tc.tensor, tc.want)
			}
			if se.Offset < 0 || !strings.Contains(msg, "at byte") {
				t.Fatalf("error %q has no byte offset", msg)
			}
		})
	}
}

// TestReadSafetensorsHeaderPadding accepts the space padding the reference
// writer adds and reports offsets past it.
func TestReadSafetensorsHeaderPadding(t *testing.T) {
	hdr := `{"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}    `
	b := rawSafetensors(hdr, make([]byte, 8))
	st, err := parseSafetensors("mem", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := st.Tensor("w"); !ok || w.Elements() != 4 || st.DataOffset != 8+int64(len(hdr)) {
		t.Fatalf("tensor %+v, data offset %d", w, st.DataOffset)
	}
}

// FuzzReadSafetensors: the reader must never panic, and whatever it accepts
// must satisfy the invariants it promises (ranges inside the data, sizes
// matching shapes, no overlap).
func FuzzReadSafetensors(f *testing.F) {
	f.Add(rawSafetensors(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`, make([]byte, 16)))
	f.Add(rawSafetensors(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(rawSafetensors(`{}`, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseSafetensors("fuzz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "safetensors: fuzz: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		dataLen := int64(len(b)) - st.DataOffset
		var prevEnd int64
		byBegin := slices.Clone(st.Tensors)
		slices.SortFunc(byBegin, func(x, y SafetensorsTensor) int { return int(x.Begin - y.Begin) })
		for _, tt := range byBegin {
			if tt.Begin < prevEnd || tt.End > dataLen || tt.Elements()*tt.DType.Size() != tt.End-tt.Begin {
				t.Fatalf("accepted an invalid tensor %+v (data %d bytes)", tt, dataLen)
			}
			prevEnd = max(prevEnd, tt.End)
		}
	})
}
