// Package hftest makes Hugging Face artifacts in code for tests: PEFT LoRA
// adapters in the exact layout PEFT saves (adapter_config.json with the keys
// of a real LoraConfig, adapter_model.safetensors with HF names and
// shapes), and the reference a PEFT user would get from merge_and_unload()
// followed by llama.cpp's convert_hf_to_gguf.py. It is pure Go, so the
// package tests of llama/hf (and its fuzz target) do not link llama.cpp.
package hftest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/modelgen"
)

// WriteBase writes a small GQA model of the given architecture (F32) and
// reads its header back.
func WriteBase(t testing.TB, dir, arch string) (string, *gguf.File) {
	t.Helper()
	path := filepath.Join(dir, arch+".gguf")
	cfg := modelgen.LlamaConfig{
		Arch: arch, Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 96, NCtx: 256, Seed: 5,
	}
	if err := modelgen.WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, f
}

// Linear is one adapted nn.Linear in HF orientation: A [r][in], B [out][r].
type Linear struct {
	Module  string // e.g. "model.layers.0.self_attn.q_proj"
	GGUF    string // e.g. "blk.0.attn_q.weight"
	In, Out int
	R       int // rank
	A, B    []float32
}

// Targets makes a random rank-r LoRA (seeded) for every projection of every
// layer of base, in HF names and orientation.
func Targets(t testing.TB, base *gguf.File, r int, seed uint64) []Linear {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	kinds := []struct{ hf, gguf string }{
		{"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
		{"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
		{"mlp.down_proj", "ffn_down"},
	}
	n, _ := base.Uint(base.Architecture() + ".block_count")
	var out []Linear
	for l := 0; l < int(n); l++ {
		for _, k := range kinds {
			name := fmt.Sprintf("blk.%d.%s.weight", l, k.gguf)
			bt, ok := base.Tensor(name)
			if !ok {
				t.Fatalf("base has no %s", name)
			}
			x := Linear{Module: fmt.Sprintf("model.layers.%d.%s", l, k.hf), GGUF: name, In: int(bt.Shape[0]), Out: int(bt.Shape[1]), R: r}
			x.A = make([]float32, r*x.In)
			x.B = make([]float32, x.Out*r)
			for i := range x.A {
				x.A[i] = float32(rng.NormFloat64() / math.Sqrt(float64(x.In)))
			}
			for i := range x.B {
				x.B[i] = float32(rng.NormFloat64() * 0.3 / math.Sqrt(float64(r)))
			}
			out = append(out, x)
		}
	}
	return out
}

// Config is an adapter_config.json with the keys PEFT 0.10's
// LoraConfig.save_pretrained writes for a LlamaForCausalLM adapter.
func Config(r int, alpha float64, rslora bool) map[string]any {
	return map[string]any{
		"alpha_pattern": map[string]any{}, "auto_mapping": nil,
		"base_model_name_or_path": "meta-llama/Llama-2-7b-hf", "bias": "none",
		"fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
		"layers_pattern": nil, "layers_to_transform": nil, "loftq_config": map[string]any{},
		"lora_alpha": alpha, "lora_dropout": 0.05, "megatron_config": nil, "megatron_core": "megatron.core",
		"modules_to_save": nil, "peft_type": "LORA", "r": r, "rank_pattern": map[string]any{},
		"revision": nil, "target_modules": []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
		"task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": rslora,
	}
}

// WritePEFT writes a PEFT adapter directory for targets.
func WritePEFT(t testing.TB, dir string, targets []Linear, cfg map[string]any) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, hf.PEFTConfigFile), js, 0o644); err != nil {
		t.Fatal(err)
	}
	var ts []hf.TensorData
	for _, x := range targets {
		p := "base_model.model." + x.Module
		ts = append(ts,
			hf.TensorData{Name: p + ".lora_A.weight", DType: hf.F32, Shape: []int64{int64(x.R), int64(x.In)}, Data: gguf.EncodeF32(x.A)},
			hf.TensorData{Name: p + ".lora_B.weight", DType: hf.F32, Shape: []int64{int64(x.Out), int64(x.R)}, Data: gguf.EncodeF32(x.B)})
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, hf.PEFTWeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// Unpermute inverts Permute (the HF weight from a converted GGUF).
func Unpermute(w []float32, rows, cols, nHead int) []float32 {
	half := rows / nHead / 2
	out := make([]float32, len(w))
	for h := 0; h < nHead; h++ {
		for j := 0; j < 2; j++ {
			for tt := 0; tt < half; tt++ {
				src := ((h*half+tt)*2 + j) * cols
				dst := ((h*2+j)*half + tt) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}

// TensorData reads one tensor of a GGUF file.
func TensorData(t testing.TB, f *gguf.File, name string) []byte {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("%s has no tensor %s", f.Path, name)
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, ti.Size())
	if _, err := fh.ReadAt(buf, f.DataOffset+int64(ti.Offset)); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return buf
}

// Permute is convert_hf_to_gguf.py's LlamaModel.permute on the rows of
// a row-major [rows][cols] matrix, spelled as the reshape/swapaxes it is:
// reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols).
func Permute(w []float32, rows, cols, nHead int) []float32 {
	half := rows / nHead / 2
	out := make([]float32, len(w))
	// Source element (h, j, t, c) lands at (h, t, j, c).
	for h := 0; h < nHead; h++ {
		for j := 0; j < 2; j++ {
			for tt := 0; tt < half; tt++ {
				src := ((h*2+j)*half + tt) * cols
				dst := ((h*half+tt)*2 + j) * cols
				copy(out[dst:dst+cols], w[src:src+cols])
			}
		}
	}
	return out
}

// WriteMergedReference writes the model an HF user would get from
// merge_and_unload() followed by convert_hf_to_gguf.py: each target's HF
// weight (the base GGUF weight with the Q/K permutation undone) plus
// scale·B·A, permuted again for llama, everything F32.
func WriteMergedReference(t testing.TB, base *gguf.File, path string, targets []Linear, scale func(r int) float64, permute bool) {
	t.Helper()
	a := base.Architecture()
	nh, _ := base.Uint(a + ".attention.head_count")
	nkv, _ := base.Uint(a + ".attention.head_count_kv")
	merged := map[string][]float32{}
	for _, x := range targets {
		w, err := gguf.Dequantize(gguf.TypeF32, TensorData(t, base, x.GGUF), x.In*x.Out)
		if err != nil {
			t.Fatal(err)
		}
		heads := 0
		if permute && strings.HasSuffix(x.GGUF, "attn_q.weight") {
			heads = int(nh)
		} else if permute && strings.HasSuffix(x.GGUF, "attn_k.weight") {
			heads = int(nkv)
		}
		if heads > 0 {
			w = Unpermute(w, x.Out, x.In, heads)
		}
		for o := 0; o < x.Out; o++ {
			for i := 0; i < x.In; i++ {
				var d float64
				for k := 0; k < x.R; k++ {
					d += float64(x.B[o*x.R+k]) * float64(x.A[k*x.In+i])
				}
				w[o*x.In+i] = float32(float64(w[o*x.In+i]) + scale(x.R)*d)
			}
		}
		if heads > 0 {
			w = Permute(w, x.Out, x.In, heads)
		}
		merged[x.GGUF] = w
	}
	wr := gguf.NewWriter()
	for _, kv := range base.KVs {
		if err := wr.Set(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for _, ti := range base.Tensors {
		data := TensorData(t, base, ti.Name)
		if m, ok := merged[ti.Name]; ok {
			data = gguf.EncodeF32(m)
		}
		if err := wr.AddTensor(ti.Name, ti.Type, ti.Shape, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

// WriteTokenizerModel converts the Hugging Face tokenizer in dir (one of
// ../shared/data/tokenizers, say) into a vocab-only GGUF model — llama
// hyper-parameters, no tensors — in a test temp dir and returns its path.
// Vocab-only loading reads no weights, so even Gemma-3's 262k-token vocabulary
// stays a few MiB and loads in well under a second.
func WriteTokenizerModel(t testing.TB, dir string) string {
	t.Helper()
	tok, err := hf.ReadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	for _, kv := range []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: filepath.Base(dir)},
		{Key: "llama.vocab_size", Value: uint32(tok.Len())},
		{Key: "llama.context_length", Value: uint32(2048)},
		{Key: "llama.embedding_length", Value: uint32(64)},
		{Key: "llama.block_count", Value: uint32(1)},
		{Key: "llama.feed_forward_length", Value: uint32(128)},
		{Key: "llama.rope.dimension_count", Value: uint32(16)},
		{Key: "llama.attention.head_count", Value: uint32(4)},
		{Key: "llama.attention.head_count_kv", Value: uint32(4)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(1e-5)},
	} {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := tok.SetGGUF(w); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), filepath.Base(dir)+".gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}
