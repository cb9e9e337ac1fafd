package llama

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/hf/hftest"
	"github.com/fireact/fireact/llama/modelgen"
)

// exactCase is one family's small model made in code, with that family's
// tensors, layout and metadata keys, and the LoRA targets it can train
// (a tied model cannot train the output: see TestTrainLlama3TiedDefaultTargets).
type exactCase struct {
	name    string
	cfg     modelgen.LlamaConfig
	targets Target
	// probe are the layers whose targets the gradient check probes; nil
	// means every layer.
	probe []int
}

// exactRun is what checkExact measured, for the caller's controls: the
// tokens compared and the untrained training graph's logits of them.
type exactRun struct {
	toks   []Token
	logits [][]float32
}

// writeCase writes cfg as dir/name.gguf.
func writeCase(t testing.TB, dir, name string, cfg modelgen.LlamaConfig) string {
	t.Helper()
	path := filepath.Join(dir, name+".gguf")
	if err := modelgen.WriteLlama(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkExact is "reproduced exactly" (issue 12) for one family: the training
// graph's logits equal llama_decode's bit for bit, before training and after
// (with the saved adapter reloaded by llama.cpp, which also reproduces the
// trainer's loss), and the gradient of A and B of every target in every
// layer matches a finite difference of the loss; and a gradient-checkpointed
// step is the whole graph's.
func checkExact(t *testing.T, dir string, c exactCase) exactRun {
	t.Helper()
	m := loadPath(t, writeCase(t, dir, c.name, c.cfg), ModelOptions{})
	b := agentBatch(t, m, trainText)
	if bos := m.IsSpecial(b.Tokens[0]); bos == c.cfg.NoAddBOS {
		t.Fatalf("first token %q special %v with NoAddBOS %v: the vocabulary's add_bos is not honoured", m.TokenText(b.Tokens[0]), bos, c.cfg.NoAddBOS)
	}
	run := exactRun{toks: b.Tokens[:64]} // see TestTrainMatchesDecodeBitExact for why 64
	run.logits = checkDecodeAndReload(t, m, b, run.toks, c)
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: c.targets, Optimizer: OptimizerSGD, Seed: 9, Threads: 2})
	for i := 0; i < 3; i++ {
		if _, err := tr.Step(b, 0.05); err != nil {
			t.Fatal(err)
		}
	}
	probe := c.probe
	if probe == nil {
		for l := 0; l < c.cfg.NLayer; l++ {
			probe = append(probe, l)
		}
	}
	checkGradients(t, tr, b, layerLoraNames(c.targets, probe))
	checkCheckpointed(t, m, b, c.targets)
	return run
}

// checkCheckpointed: gradient checkpointing (one graph per block, where
// only the first block reads the embedding and only the head makes logits)
// takes the very steps of the whole graph on this family too.
func checkCheckpointed(t *testing.T, m *Model, b TrainBatch, targets Target) {
	t.Helper()
	opts := TrainerOptions{Rank: 4, Targets: targets, Seed: 7, Threads: 2}
	plain := newTrainer(t, m, opts)
	opts.GradientCheckpointing = true
	ckpt := newTrainer(t, m, opts)
	for step := 0; step < 2; step++ {
		r1, err1 := plain.Step(b, 0.05)
		r2, err2 := ckpt.Step(b, 0.05)
		if err1 != nil || err2 != nil {
			t.Fatalf("step %d: %v / %v", step, err1, err2)
		}
		if r1 != r2 {
			t.Fatalf("step %d: whole graph %+v, checkpointed %+v", step, r1, r2)
		}
	}
	if d, s := maxDiff(params(t, plain), params(t, ckpt)); d != 0 {
		t.Fatalf("checkpointed: parameters after 2 steps differ by %g (scale %g)", d, s)
	}
}

// checkDecodeAndReload trains a few AdamW steps and checks the training
// forward against llama_decode before and after, through the reloaded
// adapter; it returns the untrained logits of toks.
func checkDecodeAndReload(t *testing.T, m *Model, b TrainBatch, toks []Token, c exactCase) [][]float32 {
	t.Helper()
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: c.targets, Seed: 2, Threads: 2})
	base, err := tr.Logits(toks)
	if err != nil {
		t.Fatal(err)
	}
	if d := worstDiff(base, decodeLogits(t, m, nil, toks)); d != 0 {
		t.Fatalf("untrained: training forward and llama_decode differ by %g (want bit-identical)", d)
	}
	first, after := trainFive(t, tr, b)
	got := checkReloaded(t, m, tr, b, toks, filepath.Join(t.TempDir(), c.name+"-adapter.gguf"), 512, after)
	t.Logf("%s: bit-identical logits before and after training; loss %.4f -> %.4f, reloaded %.6f", c.name, first, after, got)
	return base
}

// layerLoraNames lists A and B of every target in set, in each of the
// layers (and the output's), so a layer a family treats differently
// (SmolLM3's NoPE layers) has all its targets checked.
func layerLoraNames(set Target, layers []int) []string {
	var out []string
	for _, k := range targetKinds {
		if set&k.bit == 0 {
			continue
		}
		if k.bit == TargetOutput {
			out = append(out, "output.weight.lora_b", "output.weight.lora_a")
			continue
		}
		for _, l := range layers {
			p := fmt.Sprintf("blk.%d.%s.weight", l, k.kind)
			out = append(out, p+".lora_b", p+".lora_a")
		}
	}
	return out
}

// controlMoves returns how far llama_decode's logits of run.toks on the
// control model (the case's weights without one family piece) are from the
// case's training graph: a test whose control does not move cannot see
// the piece.
func controlMoves(t *testing.T, dir, name string, cfg modelgen.LlamaConfig, run exactRun) float64 {
	t.Helper()
	m := loadPath(t, writeCase(t, dir, name, cfg), ModelOptions{})
	return worstDiff(run.logits, decodeLogits(t, m, nil, run.toks))
}

// familyCases are the families whose graph is llama's, each with its real
// shape: Mistral (llama arch, GQA 4:1, untied, BOS), Qwen2.5 (qwen2: q/k/v
// biases and NEOX RoPE, tied, no BOS, RoPE base 1e6), SmolLM2 (llama arch,
// tied, no BOS, GQA 3:1) and Qwen3 (per-head q/k norms, tied, no BOS).
func familyCases() []exactCase {
	v := modelgen.SPMVocab(modelgen.BasicWords())
	return []exactCase{
		{"mistral", modelgen.LlamaConfig{Vocab: v, NEmbd: 128, NLayer: 2, NHead: 8, NHeadKV: 2, NFF: 256, NCtx: 512,
			RopeFreqBase: 1e6, Seed: 41}, TargetsAll | TargetOutput, nil},
		{"qwen2.5", modelgen.LlamaConfig{Arch: "qwen2", Vocab: v, NEmbd: 128, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 256, NCtx: 512,
			RopeFreqBase: 1e6, RMSEps: 1e-6, TiedOutput: true, NoAddBOS: true, Seed: 42}, TargetsAll, nil},
		{"smollm2", modelgen.LlamaConfig{Vocab: v, NEmbd: 96, NLayer: 2, NHead: 3, NHeadKV: 1, NFF: 256, NCtx: 512,
			RopeFreqBase: 100000, TiedOutput: true, NoAddBOS: true, Seed: 43}, TargetsAll, nil},
		{"qwen3", modelgen.LlamaConfig{Arch: "qwen3", Vocab: v, NEmbd: 128, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 256, NCtx: 512,
			RopeFreqBase: 1e6, RMSEps: 1e-6, TiedOutput: true, NoAddBOS: true, Seed: 44}, TargetsAll, nil},
	}
}

// TestTrainFamiliesExact: Mistral-, Qwen2.5-, SmolLM2- and Qwen3-shaped
// models are reproduced exactly (checkExact).
func TestTrainFamiliesExact(t *testing.T) {
	dir := t.TempDir()
	for _, c := range familyCases() {
		t.Run(c.name, func(t *testing.T) {
			checkExact(t, dir, c)
		})
	}
}

// rewriteGGUF copies the model at src to dst with edit's additions (keys
// and tensors after the originals).
func rewriteGGUF(t *testing.T, src, dst string, edit func(w *gguf.Writer) error) {
	t.Helper()
	f, err := gguf.Read(src)
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for _, ti := range f.Tensors {
		if err := w.AddTensor(ti.Name, ti.Type, ti.Shape, hftest.TensorData(t, f, ti.Name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := edit(w); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(dst); err != nil {
		t.Fatal(err)
	}
}

// TestTrainRefusesUnusedTensors: a tensor llama.cpp loads and uses but the
// training graph would not read (an FFN bias of a llama or a granite model)
// is refused by name, and so is a granite model that switches RoPE off.
func TestTrainRefusesUnusedTensors(t *testing.T) {
	dir := t.TempDir()
	bias := func(name string, n int) func(w *gguf.Writer) error {
		return func(w *gguf.Writer) error {
			return w.AddTensor(name, gguf.TypeF32, []uint64{uint64(n)}, gguf.EncodeF32(make([]float32, n)))
		}
	}
	mistral, granite := familyCases()[0], graniteCase()
	for _, tc := range []struct {
		name string
		c    exactCase
		edit func(w *gguf.Writer) error
		want string
	}{
		{"llama-ffn-up-bias", mistral, bias("blk.1.ffn_up.bias", mistral.cfg.NFF), "tensor blk.1.ffn_up.bias is not used by the training graph"},
		{"granite-ffn-down-bias", granite, bias("blk.0.ffn_down.bias", granite.cfg.NEmbd), "tensor blk.0.ffn_down.bias is not used by the training graph"},
		{"granite-no-rope", granite, func(w *gguf.Writer) error { return w.Set("granite.rope.scaling.finetuned", false) }, "granite without RoPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".gguf")
			rewriteGGUF(t, writeCase(t, dir, tc.name+"-base", tc.c.cfg), path, tc.edit)
			m := loadPath(t, path, ModelOptions{})
			_, err := NewTrainer(m, TrainerOptions{Threads: 2})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewTrainer: err = %v, want %q", err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}
