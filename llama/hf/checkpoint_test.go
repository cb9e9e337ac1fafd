package hf_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/hf/hftest"
)

// tokenizers is the real tokenizers' folder beside the checkout.
const tokenizers = "../../../shared/data/tokenizers"

// ulps is the distance of two float32 in units in the last place.
func ulps(a, b float32) int64 {
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return d
}

// TestConvertCheckpointMatchesReference converts each made-in-code
// checkpoint and compares the GGUF with the model it was made from: every
// tensor bit for bit (f32), or F16-rounded matrices and F32 vectors (f16),
// and every metadata key the converter writes equal to the reference's.
// The logits through llama.cpp are compared in cmd/fireact's convert test.
func TestConvertCheckpointMatchesReference(t *testing.T) {
	if _, err := os.Stat(tokenizers); err != nil {
		t.Fatalf("the real tokenizers are not beside the checkout: %v", err)
	}
	for _, c := range hftest.CheckpointCases(tokenizers) {
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			refPath, hfDir := hftest.WriteCheckpoint(t, dir, c)
			ref, err := gguf.Read(refPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{"f32", "f16"} {
				out := filepath.Join(dir, typ+".gguf")
				conv, err := hf.ConvertCheckpoint(context.Background(), hfDir, out, hf.CheckpointOptions{Type: typ})
				if err != nil {
					t.Fatal(err)
				}
				wantPerm := 0
				if c.PermutesQK() {
					wantPerm = 2 * c.NLayer
				}
				if conv.Arch != c.Arch || len(conv.Permuted) != wantPerm || conv.TiedOutput != c.Tied || conv.RopeFreqs != (c.RopeFreqs != nil) ||
					conv.LongRoPE != (c.LongRoPE != nil) {
					t.Fatalf("%s: conversion %+v: want arch %s, %d permuted, tied %v, rope_freqs %v, LongRoPE %v", typ, conv, c.Arch, wantPerm, c.Tied,
						c.RopeFreqs != nil, c.LongRoPE != nil)
				}
				got, err := gguf.Read(out)
				if err != nil {
					t.Fatal(err)
				}
				compareKVs(t, c.Arch, typ, ref, got)
				compareTensors(t, typ, ref, got)
			}
		})
	}
}

func compareKVs(t *testing.T, arch, typ string, ref, got *gguf.File) {
	t.Helper()
	for _, kv := range got.KVs {
		want, ok := ref.Get(kv.Key)
		switch {
		case kv.Key == "general.name":
		case !ok && (kv.Key == arch+".attention.key_length" || kv.Key == arch+".attention.value_length"):
			// Written when config.json has head_dim (Qwen3); modelgen
			// leaves it to llama.cpp's default, n_embd / n_head.
			ne, _ := ref.Uint(arch + ".embedding_length")
			nh, _ := ref.Uint(arch + ".attention.head_count")
			if kv.Value != uint32(ne/nh) {
				t.Errorf("%s: key %s = %v, want the head size %d", typ, kv.Key, kv.Value, ne/nh)
			}
		case kv.Key == "general.file_type":
			if ft := map[string]uint32{"f32": 0, "f16": 1}[typ]; kv.Value != ft {
				t.Errorf("%s: general.file_type %v, want %d", typ, kv.Value, ft)
			}
		case !ok:
			t.Errorf("%s: key %s = %v is not in the reference", typ, kv.Key, kv.Value)
		case !reflect.DeepEqual(kv.Value, want):
			t.Errorf("%s: key %s = %.80v, reference %.80v", typ, kv.Key, kv.Value, want)
		}
	}
	for _, kv := range ref.KVs {
		if _, ok := got.Get(kv.Key); ok {
			continue
		}
		// convert_hf_to_gguf.py writes these for llama only; llama.cpp
		// derives the same values for qwen.
		if arch != "llama" && (kv.Key == arch+".vocab_size" || kv.Key == arch+".rope.dimension_count") {
			continue
		}
		t.Errorf("%s: key %s of the reference is missing", typ, kv.Key)
	}
}

func compareTensors(t *testing.T, typ string, ref, got *gguf.File) {
	t.Helper()
	if len(got.Tensors) != len(ref.Tensors) {
		names := func(f *gguf.File) (s []string) {
			for _, x := range f.Tensors {
				s = append(s, x.Name)
			}
			return s
		}
		t.Fatalf("%s: tensors %v, want %v", typ, names(got), names(ref))
	}
	for i, rt := range ref.Tensors {
		gt := got.Tensors[i]
		wantType := gguf.TypeF32
		if typ == "f16" && len(rt.Shape) == 2 {
			wantType = gguf.TypeF16
		}
		if gt.Name != rt.Name || gt.Type != wantType || !reflect.DeepEqual(gt.Shape, rt.Shape) {
			t.Fatalf("%s: tensor %d is %s %s %v, want %s %s %v", typ, i, gt.Name, gt.Type, gt.Shape, rt.Name, wantType, rt.Shape)
		}
		want := hftest.ReadTensorF32(t, ref, rt.Name)
		if rt.Name == "rope_freqs.weight" {
			// The converter follows PyTorch's float32 steps; the reference
			// is the float64 formula: they may differ in the last place.
			g := hftest.ReadTensorF32(t, got, gt.Name)
			for j := range want {
				if u := ulps(g[j], want[j]); u > 4 {
					t.Errorf("%s: rope_freqs[%d] = %v, want %v (%d ulp)", typ, j, g[j], want[j], u)
				}
			}
			t.Logf("rope_freqs %v (float64 formula %v)", g, want)
			continue
		}
		wantBytes, _ := gguf.Encode(wantType, want)
		if !bytes.Equal(hftest.TensorData(t, got, gt.Name), wantBytes) {
			g := hftest.ReadTensorF32(t, got, gt.Name)
			for j := range want {
				if g[j] != want[j] {
					t.Fatalf("%s: tensor %s differs from the reference first at element %d: %v, want %v", typ, rt.Name, j, g[j], want[j])
				}
			}
			t.Fatalf("%s: tensor %s: bytes differ", typ, rt.Name)
		}
	}
}

// TestLlama3RopeFactors checks rope_freqs for Llama-3.1-8B's own
// configuration (rope_theta 500000, head_dim 128, factor 8, low 1, high 4,
// original context 8192) against the float64 formula, and the three bands.
func TestLlama3RopeFactors(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
		"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
		"max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
		"rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
		"original_max_position_embeddings": 8192, "rope_type": "llama3"}, "tie_word_embeddings": false}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := hf.ReadCheckpointConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := hf.Llama3RopeFactorsForTest(c)
	want := hftest.Llama3Factors(500000, 128, 8, 1, 4, 8192)
	if len(got) != 64 {
		t.Fatalf("%d factors, want 64", len(got))
	}
	ones, eights, mid := 0, 0, 0
	var maxULP int64
	for i := range got {
		u := ulps(got[i], want[i])
		maxULP = max(maxULP, u)
		if u > 4 {
			t.Errorf("factor %d = %v, want %v (%d ulp)", i, got[i], want[i], u)
		}
		switch {
		case got[i] == 1:
			ones++
		case got[i] == 8:
			eights++
		default:
			mid++
		}
	}
	t.Logf("smoothed factors %v; at most %d ulp from the float64 formula", got[ones:ones+mid], maxULP)
	// The wavelength 2π·500000^(i/64) crosses 8192/4 = 2048 at i ≈ 28.2 and
	// 8192 at i ≈ 34.99 (i = 35 gives 8218).
	if ones != 29 || mid != 6 || eights != 29 {
		t.Errorf("bands: %d ones, %d smoothed, %d eights; want 29, 6, 29", ones, mid, eights)
	}
}

// baseCheckpoint writes a small sharded llama checkpoint for the error tests.
func baseCheckpoint(t *testing.T) string {
	t.Helper()
	_, hfDir := hftest.WriteCheckpoint(t, t.TempDir(), hftest.Checkpoint{
		Arch: "llama", HFArch: "LlamaForCausalLM", Tokenizer: filepath.Join(tokenizers, "mistral-v0.1"),
		NEmbd: 32, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 64, Shards: 2, Seed: 9,
	})
	return hfDir
}

// editJSON rewrites a JSON file of dir through fn.
func editJSON(t *testing.T, path string, fn func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rewriteShard rewrites one shard through fn, which edits its tensors.
func rewriteShard(t *testing.T, path string, fn func([]hf.TensorData) []hf.TensorData) {
	t.Helper()
	st, err := hf.ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []hf.TensorData
	for _, x := range st.Tensors {
		b, err := st.ReadData(f, x.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, hf.TensorData{Name: x.Name, DType: x.DType, Shape: x.Shape, Data: b})
	}
	if err := hf.WriteSafetensors(path, fn(ts), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// TestConvertCheckpointRejects checks that each broken checkpoint is refused
// before any output is written, with an error naming the file and the
// tensor or field.
func TestConvertCheckpointRejects(t *testing.T) {
	base := baseCheckpoint(t)
	shard2 := "model-00002-of-00002.safetensors"
	for _, tc := range []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string
	}{
		{"truncated shard", func(t *testing.T, dir string) {
			p := filepath.Join(dir, shard2)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, fi.Size()-100); err != nil {
				t.Fatal(err)
			}
		}, []string{shard2, "ends past the data section", `tensor "`}},
		{"missing tensor", func(t *testing.T, dir string) {
			drop := "model.layers.1.mlp.up_proj.weight"
			rewriteShard(t, filepath.Join(dir, shard2), func(ts []hf.TensorData) (out []hf.TensorData) {
				for _, x := range ts {
					if x.Name != drop {
						out = append(out, x)
					}
				}
				if len(out) == len(ts) {
					t.Fatalf("%s is not in %s", drop, shard2)
				}
				return out
			})
			editJSON(t, filepath.Join(dir, hf.CheckpointIndexFile), func(m map[string]any) {
				delete(m["weight_map"].(map[string]any), drop)
			})
		}, []string{`"model.layers.1.mlp.up_proj.weight"`, "blk.1.ffn_up.weight", "is missing", hf.CheckpointIndexFile}},
		{"index lists a tensor its shard lacks", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, hf.CheckpointIndexFile), func(m map[string]any) {
				m["weight_map"].(map[string]any)["model.embed_tokens.weight"] = shard2
			})
		}, []string{hf.CheckpointIndexFile, `"model.embed_tokens.weight"`, shard2}},
		{"shard outside the directory", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, hf.CheckpointIndexFile), func(m map[string]any) {
				m["weight_map"].(map[string]any)["model.norm.weight"] = "../x.safetensors"
			})
		}, []string{`weight_map["model.norm.weight"]`, "not a file name"}},
		{"shape mismatch", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["intermediate_size"] = 48 })
		}, []string{"model-00001-of-00002.safetensors", `"model.layers.0.mlp.gate_proj.weight"`, "shape [64 32]", "[48 32]", "config.json"}},
		{"unsupported architecture", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["architectures"] = []string{"GPT2LMHeadModel"} })
		}, []string{"config.json", `"GPT2LMHeadModel"`, "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"}},
		{"bad config field", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) { m["num_key_value_heads"] = "two" })
		}, []string{"config.json", `"num_key_value_heads"`}},
		{"unsupported rope scaling", func(t *testing.T, dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) {
				m["rope_scaling"] = map[string]any{"type": "yarn", "factor": 4.0}
			})
		}, []string{"config.json", "rope_scaling", `"yarn"`}},
		{"unknown tensor", func(t *testing.T, dir string) {
			rewriteShard(t, filepath.Join(dir, shard2), func(ts []hf.TensorData) []hf.TensorData {
				return append(ts, hf.TensorData{Name: "model.layers.1.mlp.extra.weight", DType: hf.F32, Shape: []int64{2}, Data: make([]byte, 8)})
			})
			editJSON(t, filepath.Join(dir, hf.CheckpointIndexFile), func(m map[string]any) {
				m["weight_map"].(map[string]any)["model.layers.1.mlp.extra.weight"] = shard2
			})
		}, []string{shard2, `"model.layers.1.mlp.extra.weight"`, "no place"}},
		{"fp8 dtype", func(t *testing.T, dir string) {
			// safetensors as an FP8 checkpoint writes it: the header by hand,
			// since WriteSafetensors writes only the supported types.
			hdr := `{"model.norm.weight":{"dtype":"F8_E4M3","shape":[32],"data_offsets":[0,32]}}`
			var b bytes.Buffer
			binary.Write(&b, binary.LittleEndian, uint64(len(hdr)))
			b.WriteString(hdr)
			b.Write(make([]byte, 32))
			if err := os.WriteFile(filepath.Join(dir, "model-00003-of-00003.safetensors"), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			rewriteShard(t, filepath.Join(dir, shard2), func(ts []hf.TensorData) (out []hf.TensorData) {
				for _, x := range ts {
					if x.Name != "model.norm.weight" {
						out = append(out, x)
					}
				}
				return out
			})
			editJSON(t, filepath.Join(dir, hf.CheckpointIndexFile), func(m map[string]any) {
				m["weight_map"].(map[string]any)["model.norm.weight"] = "model-00003-of-00003.safetensors"
			})
		}, []string{"model-00003-of-00003.safetensors", `"model.norm.weight"`, `"F8_E4M3"`, "F32, F16 or BF16"}},
		{"tokenizer of another model", func(t *testing.T, dir string) {
			for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
				b, err := os.ReadFile(filepath.Join(tokenizers, "llama-3.1", f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, []string{"vocab_size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			copyDir(t, base, dir)
			tc.break_(t, dir)
			out := filepath.Join(t.TempDir(), "out.gguf")
			_, err := hf.ConvertCheckpoint(context.Background(), dir, out, hf.CheckpointOptions{Type: "f32"})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("an output file exists after the error: %v", serr)
			}
			t.Logf("%v", err)
		})
	}
}

// TestConvertCheckpointQuantizeAtomic checks the quantized path with a
// quantizer that fails: no output and no temporary file is left, and an
// existing output stays as it was.
func TestConvertCheckpointQuantizeAtomic(t *testing.T) {
	hfDir := baseCheckpoint(t)
	outDir := t.TempDir()
	out := filepath.Join(outDir, "model.gguf")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var gotIn string
	failing := func(ctx context.Context, in, dst, typ string) error {
		gotIn = in
		if _, err := gguf.Read(in); err != nil {
			t.Errorf("the quantizer's input is not a valid GGUF: %v", err)
		}
		os.WriteFile(dst, []byte("partial"), 0o644)
		return errors.New("disk full")
	}
	_, err := hf.ConvertCheckpoint(context.Background(), hfDir, out, hf.CheckpointOptions{Type: "q8_0", Quantize: failing})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v, want the quantizer's", err)
	}
	if gotIn == "" {
		t.Fatal("the quantizer was not called")
	}
	if b, _ := os.ReadFile(out); string(b) != "old" {
		t.Errorf("the existing output was changed to %q", b)
	}
	ents, _ := os.ReadDir(outDir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("files left in the output directory: %v", names)
	}
	if _, err := hf.ConvertCheckpoint(context.Background(), hfDir, out, hf.CheckpointOptions{Type: "q8_0"}); err == nil || !strings.Contains(err.Error(), "quantizer") {
		t.Errorf("q8_0 without a quantizer: error %v", err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestConvertCheckpointLinearRopeAndBiases covers what the reference cases
// do not: linear RoPE scaling (written as rope.scaling.type and factor) and
// a llama with attention_bias, whose q/k biases are permuted like their
// weights' rows and whose v/o biases are copied.
func TestConvertCheckpointLinearRopeAndBiases(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	copyDir(t, baseCheckpoint(t), dir)
	editJSON(t, filepath.Join(dir, "config.json"), func(m map[string]any) {
		m["rope_scaling"] = map[string]any{"type": "linear", "factor": 2.0}
		m["attention_bias"] = true
	})
	// hidden 32, 4 heads of 8, 2 KV heads: q bias 32, k/v bias 16, o bias 32.
	seq := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i)
		}
		return x
	}
	biases := map[string]int{"q_proj": 32, "k_proj": 16, "v_proj": 16, "o_proj": 32}
	shard1 := "model-00001-of-00002.safetensors"
	rewriteShard(t, filepath.Join(dir, shard1), func(ts []hf.TensorData) []hf.TensorData {
		for p, n := range biases {
			ts = append(ts, hf.TensorData{Name: "model.layers.0.self_attn." + p + ".bias", DType: hf.F32, Shape: []int64{int64(n)}, Data: gguf.EncodeF32(seq(n))})
		}
		return ts
	})
	editJSON(t, filepath.Join(dir, hf.CheckpointIndexFile), func(m map[string]any) {
		for p := range biases {
			m["weight_map"].(map[string]any)["model.layers.0.self_attn."+p+".bias"] = shard1
		}
	})
	out := filepath.Join(t.TempDir(), "out.gguf")
	conv, err := hf.ConvertCheckpoint(context.Background(), dir, out, hf.CheckpointOptions{Type: "f32"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.String("llama.rope.scaling.type"); v != "linear" {
		t.Errorf("llama.rope.scaling.type = %q, want linear", v)
	}
	if v, _ := f.Float("llama.rope.scaling.factor"); v != 2 {
		t.Errorf("llama.rope.scaling.factor = %v, want 2", v)
	}
	// LlamaModel.permute on a vector: per head, HF's [first half, second
	// half] interleaved as (0, h, 1, h+1, ...), h = head size / 2 = 4.
	want := map[string][]float32{
		"blk.0.attn_q.bias":      hftest.Permute(seq(32), 32, 1, 4),
		"blk.0.attn_k.bias":      {0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15},
		"blk.0.attn_v.bias":      seq(16),
		"blk.0.attn_output.bias": seq(32),
	}
	for name, w := range want {
		if got := hftest.ReadTensorF32(t, f, name); !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	if !slicesContain(conv.Permuted, "blk.0.attn_q.bias") || !slicesContain(conv.Permuted, "blk.0.attn_k.bias") {
		t.Errorf("permuted %v: want the q and k biases among them", conv.Permuted)
	}
}

func slicesContain(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
