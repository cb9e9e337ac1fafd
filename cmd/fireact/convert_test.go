package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf/hftest"
)

// allLogits returns the logits of every position of toks, concatenated.
func allLogits(t *testing.T, path string, toks []llama.Token) []float32 {
	t.Helper()
	m, err := llama.LoadModel(path, llama.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.ContextOptions{NCtx: 64, Threads: 2, TypeK: "f32", TypeV: "f32", FlashAttn: llama.FlashAttnOff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b llama.Batch
	for i, tk := range toks {
		b.Add(tk, i, 0, true)
	}
	if err := c.Decode(&b); err != nil {
		t.Fatal(err)
	}
	var out []float32
	for i := range toks {
		l, err := c.Logits(i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, l...)
	}
	return out
}

// TestConvertCheckpointLogits is the proof by llama.cpp: a model made in
// code is written as a Hugging Face checkpoint (Q/K rows in HF's order,
// shards and index, a real tokenizer), `fireact convert` turns it back into
// GGUF, and llama.cpp gives the same logits at every position for both
// files: bit for bit for f32. For f16 and q8_0 (on the llama case, whose
// 32k vocabulary keeps the extra loads cheap) the logits equal bit for bit
// those of the reference converted to that type by llama.cpp's own
// quantizer, and stay within the type's rounding of the f32 reference.
func TestConvertCheckpointLogits(t *testing.T) {
	const text = "Question: Who directed the film? Thought: I need to search"
	// Max |Δlogit| from the f32 reference, for logits spanning about 10.
	// q8_0 also rounds the activations to 8 bits in llama.cpp's dot
	// products; over ~2M logits the worst one moves by a few tenths.
	tol := map[string]float64{"f16": 0.02, "q8_0": 0.5}
	for _, c := range hftest.CheckpointCases("../../../shared/data/tokenizers") {
		if c.Name == "mistral-bf16" {
			continue // the same path as llama-gqa-sharded; its tensors are checked in llama/hf
		}
		t.Run(c.Name, func(t *testing.T) {
			dir := t.TempDir()
			refPath, hfDir := hftest.WriteCheckpoint(t, dir, c)
			ref, err := llama.LoadModel(refPath, llama.ModelOptions{VocabOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			toks, err := ref.Tokenize(text, llama.TokenizeOptions{AddSpecial: true})
			ref.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(toks) < 8 {
				t.Fatalf("%d tokens: too few for RoPE to matter", len(toks))
			}
			want := allLogits(t, refPath, toks)
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, v := range want {
				lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
			}
			if hi-lo < 1 {
				t.Fatalf("reference logits span only [%g, %g]: the comparison would prove nothing", lo, hi)
			}
			types := []string{"f32"}
			if c.Name == "llama-gqa-sharded" {
				types = append(types, "f16", "q8_0")
			}
			for _, typ := range types {
				out := filepath.Join(dir, typ+".gguf")
				got, err := runFireact(t, "", "convert", "--out", out, "--type", typ, "--threads", "2", hfDir)
				if err != nil {
					t.Fatalf("convert --type %s: %v\n%s", typ, err, got)
				}
				if !strings.Contains(got, "convert: wrote "+out) {
					t.Errorf("convert printed %q", got)
				}
				f, err := gguf.Read(out)
				if err != nil {
					t.Fatal(err)
				}
				// attn_output: every family has it (phi3 fuses attn_q into attn_qkv).
				if ti, _ := f.Tensor("blk.0.attn_output.weight"); ti.Type.String() != strings.ToUpper(typ) {
					t.Errorf("--type %s: blk.0.attn_output.weight is %s", typ, ti.Type)
				}
				logits := allLogits(t, out, toks)
				d := maxAbsDiff(logits, want)
				t.Logf("%s: %d positions × %d logits, max |Δ| from the f32 reference %.3g (span %.3g)", typ, len(toks), len(want)/len(toks), d, hi-lo)
				if typ == "f32" {
					if d != 0 {
						t.Errorf("f32: logits differ from the reference by %g", d)
					}
					continue
				}
				if d > tol[typ] {
					t.Errorf("%s: logits differ from the f32 reference by %g (allowed %g)", typ, d, tol[typ])
				}
				q := filepath.Join(dir, "reference."+typ+".gguf")
				if err := llama.Quantize(refPath, q, typ, 2); err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(logits, allLogits(t, q, toks)); d != 0 {
					t.Errorf("%s: logits differ by %g from the reference quantized to %s by llama.cpp", typ, d, typ)
				}
			}
		})
	}
}

// TestConvertCheckpointCommandErrors checks the command's own refusals.
func TestConvertCheckpointCommandErrors(t *testing.T) {
	peft := t.TempDir()
	if err := os.WriteFile(filepath.Join(peft, "adapter_config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x.gguf")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"convert", "--out", out, peft}, "--base"},
		{[]string{"convert", "--out", out, "--type", "q9_9", t.TempDir()}, `--type "q9_9"`},
		{[]string{"convert", "--out", out, "--base", "b.gguf", "--type", "f16", peft}, "--type is for checkpoints"},
		{[]string{"convert", "--out", out, t.TempDir()}, "config.json"},
	} {
		_, err := runFireact(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}
