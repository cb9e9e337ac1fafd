package hf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf"
	"github.com/fireact/fireact/llama/hf/hftest"
	"github.com/fireact/fireact/llama/modelgen"
)

// TestGGUFToPEFTRoundTrip converts a GGUF LoRA (F32 and F16 tensors, every
// projection, GQA) to PEFT and back: the tensors must come back bit-identical,
// and the PEFT side must be in HF layout: HF names and shapes, Q/K lora_B rows
// un-permuted, an adapter_config.json PEFT can load.
func TestGGUFToPEFTRoundTrip(t *testing.T) {
	dir := t.TempDir()
	_, base := hftest.WriteBase(t, dir, "llama")
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
		data, typ := hftest.TensorData(t, sf, ti.Name), ti.Type
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
	gb, _ := gguf.Dequantize(gguf.TypeF32, hftest.TensorData(t, orig, "blk.0.attn_k.weight.lora_b"), 32*4)
	wantB := gguf.EncodeF32(hftest.Unpermute(gb, 32, 4, 2))
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
		if !bytes.Equal(hftest.TensorData(t, bf, ti.Name), hftest.TensorData(t, orig, ti.Name)) {
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
	_, base := hftest.WriteBase(t, dir, "llama")
	targets := hftest.Targets(t, base, 2, 1)[:2]
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
			cfg := hftest.Config(2, 4, false)
			tc.edit(cfg)
			hftest.WritePEFT(t, d, targets, cfg)
			_, err := hf.PEFTToGGUF(context.Background(), d, base, filepath.Join(d, "out.gguf"))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), hf.PEFTConfigFile) {
				t.Fatalf("error %v, want one naming %s and %q", err, hf.PEFTConfigFile, tc.want)
			}
		})
	}
	t.Run("wrong shape", func(t *testing.T) {
		d := filepath.Join(dir, "shape")
		// k_proj (in 64, out 32) saved the other way round.
		k := hftest.Targets(t, base, 2, 1)[1]
		bad := []hftest.Linear{{Module: k.Module, In: k.Out, Out: k.In, R: k.R, A: k.B, B: k.A}}
		hftest.WritePEFT(t, d, bad, hftest.Config(2, 4, false))
		_, err := hf.PEFTToGGUF(context.Background(), d, base, filepath.Join(d, "out.gguf"))
		if err == nil || !strings.Contains(err.Error(), "k_proj.lora_A.weight") || !strings.Contains(err.Error(), "do not fit") {
			t.Fatalf("error %v, want a shape mismatch naming the tensor", err)
		}
	})
}
