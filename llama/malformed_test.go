package llama

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
)

// TestLoadMalformed feeds LoadModel a corpus of broken files made from a real model.
// Every one must give an error naming the file, and the process must survive
// (llama.cpp would abort on several of these if it saw them).
func TestLoadMalformed(t *testing.T) {
	good, err := os.ReadFile(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type tc struct {
		name string
		data []byte
	}
	var cases []tc
	// Truncations: densely through the header and metadata, sparsely through the data.
	f, err := gguf.Read(storiesPath)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(good); {
		cases = append(cases, tc{name: "trunc", data: good[:off]})
		switch {
		case off < 64:
			off++
		case int64(off) < f.DataOffset:
			off += 97
		default:
			off += 40961
		}
	}
	cases = append(cases, tc{"trunc-last-byte", good[:len(good)-1]})
	patch := func(off int, v uint64, size int) []byte {
		b := append([]byte(nil), good...)
		switch size {
		case 4:
			binary.LittleEndian.PutUint32(b[off:], uint32(v))
		case 8:
			binary.LittleEndian.PutUint64(b[off:], v)
		}
		return b
	}
	wrongMagic := append([]byte("GGML"), good[4:]...)
	cases = append(cases,
		tc{"empty", nil},
		tc{"wrong-magic", wrongMagic},
		tc{"version-1", patch(4, 1, 4)},
		tc{"version-99", patch(4, 99, 4)},
		tc{"absurd-n-tensors", patch(8, 1<<62, 8)},
		tc{"absurd-n-kv", patch(16, 1<<62, 8)},
		tc{"absurd-first-key-length", patch(24, 1<<40, 8)},
		tc{"text-file", []byte("this is not a model\n")},
		tc{"zip-file", append([]byte("PK\x03\x04"), make([]byte, 100)...)},
	)
	for i, c := range cases {
		path := filepath.Join(dir, c.name+"-"+strconv.Itoa(i)+".gguf")
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := LoadModel(path, ModelOptions{})
		if err == nil {
			m.Close()
			t.Errorf("%s (%d bytes): loaded without error", c.name, len(c.data))
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error does not name the file: %v", c.name, err)
		}
	}
	if _, err := LoadModel(filepath.Join(dir, "missing.gguf"), ModelOptions{}); err == nil {
		t.Error("a missing file loaded")
	}
}

// TestLoadValidButForeign covers files that are well-formed GGUF but that llama.cpp
// refuses: the error must come back as a Go error with llama.cpp's reason.
func TestLoadValidButForeign(t *testing.T) {
	dir := t.TempDir()
	w := gguf.NewWriter()
	w.Set("general.architecture", "no-such-arch")
	w.AddTensor("x.weight", gguf.TypeF32, []uint64{4}, make([]byte, 16))
	path := filepath.Join(dir, "foreign.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	_, err := LoadModel(path, ModelOptions{})
	if err == nil || !strings.Contains(err.Error(), "no-such-arch") {
		t.Fatalf("err = %v, want llama.cpp's unknown-architecture reason", err)
	}

	// An adapter file given as a model.
	w = gguf.NewWriter()
	w.Set("general.architecture", "llama")
	w.Set("general.type", "adapter")
	w.Set("adapter.type", "lora")
	w.AddTensor("blk.0.attn_q.weight.lora_a", gguf.TypeF32, []uint64{4, 1}, make([]byte, 16))
	path = filepath.Join(dir, "adapter.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(path, ModelOptions{}); err == nil || !strings.Contains(err.Error(), "adapter") {
		t.Fatalf("loading an adapter as a model: %v", err)
	}
}
