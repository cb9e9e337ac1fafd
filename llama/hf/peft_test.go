package hf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/modelgen"
)

// writeBase writes a small GQA model of the given architecture (F32) and
// reads its header back.
func writeBase(t *testing.T, dir, arch string) (string, *gguf.File) {
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

// hfLinear is one adapted nn.Linear in HF orientation: A [r][in], B [out][r].
type hfLinear struct {
	module  string // e.g. "model.layers.0.self_attn.q_proj"
	gguf    string // e.g. "blk.0.attn_q.weight"
	in, out int
	a, b    []float32
}

// hfTargets lists every projection of every layer, in HF names, with the
// shapes of base.
func hfTargets(t *testing.T, base *gguf.File, r int, seed uint64) []hfLinear {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	kinds := []struct{ hf, gguf string }{
		{"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"}, {"self_attn.v_proj", "attn_v"},
		{"self_attn.o_proj", "attn_output"}, {"mlp.gate_proj", "ffn_gate"}, {"mlp.up_proj", "ffn_up"},
		{"mlp.down_proj", "ffn_down"},
	}
	n, _ := base.Uint(base.Architecture() + ".block_count")
	var out []hfLinear
	for l := 0; l < int(n); l++ {
		for _, k := range kinds {
			name := fmt.Sprintf("blk.%d.%s.weight", l, k.gguf)
			bt, ok := base.Tensor(name)
			if !ok {
				t.Fatalf("base has no %s", name)
			}
			x := hfLinear{module: fmt.Sprintf("model.layers.%d.%s", l, k.hf), gguf: name, in: int(bt.Shape[0]), out: int(bt.Shape[1])}
			x.a = make([]float32, r*x.in)
			x.b = make([]float32, x.out*r)
			for i := range x.a {
				x.a[i] = float32(rng.NormFloat64() / math.Sqrt(float64(x.in)))
			}
			for i := range x.b {
				x.b[i] = float32(rng.NormFloat64() * 0.3 / math.Sqrt(float64(r)))
			}
			out = append(out, x)
		}
	}
	return out
}

// peftConfig is an adapter_config.json as PEFT 0.10 saves it for a
// LlamaForCausalLM (FireAct's adapters carry the same keys).
func peftConfig(r int, alpha float64, rslora bool) map[string]any {
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

// writePEFT writes a PEFT adapter directory for targets.
func writePEFT(t *testing.T, dir string, targets []hfLinear, cfg map[string]any) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, hf.PEFTConfigFile), js, 0o644); err != nil {
		t.Fatal(err)
	}
	r := int64(cfg["r"].(int))
	var ts []hf.TensorData
	for _, x := range targets {
		p := "base_model.model." + x.module
		ts = append(ts,
			hf.TensorData{Name: p + ".lora_A.weight", DType: hf.F32, Shape: []int64{r, int64(x.in)}, Data: gguf.EncodeF32(x.a)},
			hf.TensorData{Name: p + ".lora_B.weight", DType: hf.F32, Shape: []int64{int64(x.out), r}, Data: gguf.EncodeF32(x.b)})
	}
	if err := hf.WriteSafetensors(filepath.Join(dir, hf.PEFTWeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// numpyPermute is convert_hf_to_gguf.py's LlamaModel.permute on the rows of
// a row-major [rows][cols] matrix, spelled as the reshape/swapaxes it is:
// reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols).
func numpyPermute(w []float32, rows, cols, nHead int) []float32 {
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

// numpyUnpermute inverts numpyPermute (the HF weight from a converted GGUF).
func numpyUnpermute(w []float32, rows, cols, nHead int) []float32 {
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

// tensorData reads one tensor of a GGUF file.
func tensorData(t *testing.T, f *gguf.File, name string) []byte {
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

// writeMergedReference writes the model an HF user would get from
// merge_and_unload() followed by convert_hf_to_gguf.py: each target's HF
// weight (the base GGUF weight with the Q/K permutation undone) plus
// scale·B·A, permuted again for llama, everything F32.
func writeMergedReference(t *testing.T, base *gguf.File, path string, targets []hfLinear, r int, scale float64, permute bool) {
	t.Helper()
	a := base.Architecture()
	nh, _ := base.Uint(a + ".attention.head_count")
	nkv, _ := base.Uint(a + ".attention.head_count_kv")
	merged := map[string][]float32{}
	for _, x := range targets {
		w, err := gguf.Dequantize(gguf.TypeF32, tensorData(t, base, x.gguf), x.in*x.out)
		if err != nil {
			t.Fatal(err)
		}
		heads := 0
		if permute && strings.HasSuffix(x.gguf, "attn_q.weight") {
			heads = int(nh)
		} else if permute && strings.HasSuffix(x.gguf, "attn_k.weight") {
			heads = int(nkv)
		}
		if heads > 0 {
			w = numpyUnpermute(w, x.out, x.in, heads)
		}
		for o := 0; o < x.out; o++ {
			for i := 0; i < x.in; i++ {
				var d float64
				for k := 0; k < r; k++ {
					d += float64(x.b[o*r+k]) * float64(x.a[k*x.in+i])
				}
				w[o*x.in+i] = float32(float64(w[o*x.in+i]) + scale*d)
			}
		}
		if heads > 0 {
			w = numpyPermute(w, x.out, x.in, heads)
		}
		merged[x.gguf] = w
	}
	wr := gguf.NewWriter()
	for _, kv := range base.KVs {
		if err := wr.Set(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for _, ti := range base.Tensors {
		data := tensorData(t, base, ti.Name)
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

// logits decodes text as one sequence and returns the last position's logits.
func logits(t *testing.T, m *llama.Model, adapter *llama.Adapter, text string) []float32 {
	t.Helper()
	c, err := m.NewContext(llama.ContextOptions{NCtx: 256, TypeK: "f32", TypeV: "f32", FlashAttn: llama.FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if adapter != nil {
		if err := c.SetAdapter(adapter, 1); err != nil {
			t.Fatal(err)
		}
		defer c.ClearAdapters()
	}
	toks, err := m.Tokenize(text, llama.TokenizeOptions{AddSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	var b llama.Batch
	for i, tk := range toks {
		b.Add(tk, i, 0, i == len(toks)-1)
	}
	if err := c.Decode(&b); err != nil {
		t.Fatal(err)
	}
	l, err := c.Logits(len(toks) - 1)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), l...)
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func loadModel(t *testing.T, path string) *llama.Model {
	t.Helper()
	m, err := llama.LoadModel(path, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestPEFTToGGUFMatchesMergedCheckpoint is the proof the issue asks for: a
// GGUF base with the converted PEFT adapter gives the logits of the HF
// checkpoint with the adapter merged (W + s·B·A) and then converted, for
// q, k, v, o and MLP targets, on a permuted (llama, GQA) and an unpermuted
// (qwen2) architecture, with plain and rsLoRA scaling.
func TestPEFTToGGUFMatchesMergedCheckpoint(t *testing.T) {
	const r = 4
	const text = "Question: who directed the film? Thought: I need to search"
	for _, tc := range []struct {
		arch    string
		alpha   float64
		rslora  bool
		scale   float64
		permute bool
	}{
		{"llama", 8, false, 8.0 / r, true},
		{"qwen2", 8, true, 8.0 / 2, false}, // alpha/sqrt(r)
	} {
		t.Run(tc.arch, func(t *testing.T) {
			dir := t.TempDir()
			basePath, base := writeBase(t, dir, tc.arch)
			targets := hfTargets(t, base, r, 3)
			peftDir := filepath.Join(dir, "peft")
			writePEFT(t, peftDir, targets, peftConfig(r, tc.alpha, tc.rslora))
			adapterPath := filepath.Join(dir, "adapter.gguf")
			conv, err := hf.PEFTToGGUF(context.Background(), peftDir, base, adapterPath)
			if err != nil {
				t.Fatal(err)
			}
			if len(conv.Targets) != len(targets) {
				t.Fatalf("converted %d targets, want %d", len(conv.Targets), len(targets))
			}
			if wantPerm := 0; tc.permute {
				wantPerm = 4 // q and k of 2 layers
				if len(conv.Permuted) != wantPerm {
					t.Fatalf("permuted %v, want q and k of each layer", conv.Permuted)
				}
			} else if len(conv.Permuted) != 0 {
				t.Fatalf("permuted %v on %s, want none", conv.Permuted, tc.arch)
			}
			mergedPath := filepath.Join(dir, "merged.gguf")
			writeMergedReference(t, base, mergedPath, targets, r, tc.scale, tc.permute)

			bm := loadModel(t, basePath)
			ad, err := bm.LoadAdapter(adapterPath)
			if err != nil {
				t.Fatal(err)
			}
			defer ad.Close()
			plain := logits(t, bm, nil, text)
			withAdapter := logits(t, bm, ad, text)
			want := logits(t, loadModel(t, mergedPath), nil, text)
			if d := maxAbsDiff(plain, want); d < 0.05 {
				t.Fatalf("the adapter barely changes the logits (%g): the test would prove nothing", d)
			}
			// F32 throughout: only summation order differs.
			if d := maxAbsDiff(withAdapter, want); d > 2e-3 {
				t.Fatalf("base+converted adapter differs from the merged checkpoint by %g (base differs by %g)", d, maxAbsDiff(plain, want))
			}
		})
	}
}

// TestGGUFToPEFTRoundTrip converts a GGUF LoRA (F32 and F16 tensors, every
// projection, GQA) to PEFT and back: the tensors must come back bit-identical,
// and the PEFT side must be in HF layout: HF names and shapes, Q/K lora_B rows
// un-permuted, an adapter_config.json PEFT can load.
func TestGGUFToPEFTRoundTrip(t *testing.T) {
	dir := t.TempDir()
	_, base := writeBase(t, dir, "llama")
	src := filepath.Join(dir, "src.gguf")
	if err := modelgen.WriteLoRA(src, base, modelgen.LoRAConfig{Targets: modelgen.AllTargets(base), Rank: 4, Alpha: 8, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	// Make one pair F16 so that element types are shown to be kept.
	sf, err := gguf.Read(src)
	if err != nil {
		t.Fatal(err)
	}
	mixed := filepath.Join(dir, "mixed.gguf")
	w := gguf.NewWriter()
	for _, kv := range sf.KVs {
		w.Set(kv.Key, kv.Value)
	}
	for _, ti := range sf.Tensors {
		data, typ := tensorData(t, sf, ti.Name), ti.Type
		if strings.HasPrefix(ti.Name, "blk.1.attn_k.") {
			x, _ := gguf.Dequantize(typ, data, int(ti.Elements()))
			data, typ = gguf.EncodeF16(x), gguf.TypeF16
		}
		if err := w.AddTensor(ti.Name, typ, ti.Shape, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFile(mixed); err != nil {
		t.Fatal(err)
	}
	orig, err := gguf.Read(mixed)
	if err != nil {
		t.Fatal(err)
	}

	peftDir := filepath.Join(dir, "peft")
	if _, err := hf.GGUFToPEFT(context.Background(), mixed, base, peftDir, hf.PEFTOptions{BaseModel: "fireact/tiny"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := hf.ReadPEFTConfig(peftDir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.R != 4 || cfg.LoRAAlpha != 8 || cfg.BaseModel != "fireact/tiny" || cfg.TaskType != "CAUSAL_LM" {
		t.Fatalf("config %+v", cfg)
	}
	var mods []string
	json.Unmarshal(cfg.TargetModules, &mods)
	if strings.Join(mods, ",") != "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj" {
		t.Fatalf("target_modules %v", mods)
	}
	st, err := hf.ReadSafetensors(filepath.Join(peftDir, hf.PEFTWeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	qa, ok := st.Tensor("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight")
	if !ok || qa.Shape[0] != 4 || qa.Shape[1] != 64 || qa.DType != hf.F32 {
		t.Fatalf("k_proj lora_A %+v (want [r=4, in=64] F32)", qa)
	}
	kb, ok := st.Tensor("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")
	if !ok || kb.Shape[0] != 32 || kb.Shape[1] != 4 || kb.DType != hf.F16 {
		t.Fatalf("layer 1 k_proj lora_B %+v (want [out=32, r=4] F16)", kb)
	}
	// lora_B of k in HF order is the GGUF lora_b with the permutation undone.
	fh, _ := os.Open(st.Path)
	defer fh.Close()
	gotB, err := st.ReadData(fh, "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight")
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := gguf.Dequantize(gguf.TypeF32, tensorData(t, orig, "blk.0.attn_k.weight.lora_b"), 32*4)
	wantB := gguf.EncodeF32(numpyUnpermute(gb, 32, 4, 2))
	if !bytes.Equal(gotB, wantB) {
		t.Fatal("k_proj lora_B is not the GGUF lora_b with LlamaModel.permute undone (n_head_kv=2)")
	}

	back := filepath.Join(dir, "back.gguf")
	if _, err := hf.PEFTToGGUF(context.Background(), peftDir, base, back); err != nil {
		t.Fatal(err)
	}
	bf, err := gguf.Read(back)
	if err != nil {
		t.Fatal(err)
	}
	if len(bf.Tensors) != len(orig.Tensors) {
		t.Fatalf("%d tensors back, want %d", len(bf.Tensors), len(orig.Tensors))
	}
	for _, ti := range orig.Tensors {
		bt, ok := bf.Tensor(ti.Name)
		if !ok {
			t.Fatalf("tensor %s lost", ti.Name)
		}
		if bt.Type != ti.Type || fmt.Sprint(bt.Shape) != fmt.Sprint(ti.Shape) {
			t.Fatalf("%s: %s %v back, want %s %v", ti.Name, bt.Type, bt.Shape, ti.Type, ti.Shape)
		}
		if !bytes.Equal(tensorData(t, bf, ti.Name), tensorData(t, orig, ti.Name)) {
			t.Fatalf("%s: data differs after the round trip", ti.Name)
		}
	}
	if a, _ := bf.Float("adapter.lora.alpha"); a != 8 {
		t.Fatalf("alpha %g back, want 8", a)
	}
}

// TestPEFTRejects checks the adapters that cannot become a llama.cpp LoRA.
func TestPEFTRejects(t *testing.T) {
	dir := t.TempDir()
	_, base := writeBase(t, dir, "llama")
	targets := hfTargets(t, base, 2, 1)[:2]
	for _, tc := range []struct {
		name string
		edit func(cfg map[string]any)
		want string
	}{
		{"dora", func(c map[string]any) { c["use_dora"] = true }, "use_dora"},
		{"bias", func(c map[string]any) { c["bias"] = "lora_only" }, "bias"},
		{"modules_to_save", func(c map[string]any) { c["modules_to_save"] = []string{"lm_head"} }, "modules_to_save"},
		{"alpha_pattern", func(c map[string]any) { c["alpha_pattern"] = map[string]any{"q_proj": 4} }, "alpha_pattern"},
		{"not lora", func(c map[string]any) { c["peft_type"] = "IA3" }, "peft_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			cfg := peftConfig(2, 4, false)
			tc.edit(cfg)
			writePEFT(t, d, targets, cfg)
			_, err := hf.PEFTToGGUF(context.Background(), d, base, filepath.Join(d, "out.gguf"))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), hf.PEFTConfigFile) {
				t.Fatalf("error %v, want one naming %s and %q", err, hf.PEFTConfigFile, tc.want)
			}
		})
	}
	t.Run("wrong shape", func(t *testing.T) {
		d := filepath.Join(dir, "shape")
		// k_proj (in 64, out 32) saved the other way round.
		k := hfTargets(t, base, 2, 1)[1]
		bad := []hfLinear{{module: k.module, in: k.out, out: k.in, a: k.b, b: k.a}}
		writePEFT(t, d, bad, peftConfig(2, 4, false))
		_, err := hf.PEFTToGGUF(context.Background(), d, base, filepath.Join(d, "out.gguf"))
		if err == nil || !strings.Contains(err.Error(), "k_proj.lora_A.weight") || !strings.Contains(err.Error(), "do not fit") {
			t.Fatalf("error %v, want a shape mismatch naming the tensor", err)
		}
	})
}
