package llama

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/llama/modelgen"
)

// gemmaCase is a Gemma-shaped model made in code with the tensor names and
// keys convert_hf_to_gguf.py writes: head_dim 32 with n_embd/n_head 16 (as
// Gemma's heads are wider than n_embd/n_head), two query heads per key/value
// head, and a sliding window of 8 under the test's 64 tokens, so the
// sliding-window layers see less than the global ones.
type gemmaCase struct {
	name string
	cfg  modelgen.GemmaConfig
}

// gemmaCases: gemma2 (layer 0 sliding, layer 1 global; soft-capped
// attention and logits) and gemma3 (layers 0-4 sliding at RoPE base 10000,
// layer 5 global at 1e6; q/k norms; one with a final soft-cap and Gemma-3
// 4B's linear RoPE scaling of the global layers). The caps are
// smaller than Gemma-2's 50 and 30 so that tanh is far from linear on this
// small model's logits: a graph without them, or with a wrong gradient
// through them, is far off. InitStd 0.25 (twice the default for n_embd 64)
// puts the gate inputs at |x| ~ 2, where GELU's cubic term matters.
func gemmaCases() []gemmaCase {
	base := modelgen.GemmaConfig{
		Vocab: modelgen.SPMVocab(modelgen.BasicWords()),
		NEmbd: 64, NHead: 4, NHeadKV: 2, HeadDim: 32, NFF: 128, NCtx: 512, SlidingWindow: 8, Seed: 17, InitStd: 0.25,
	}
	g2 := base
	g2.Arch, g2.NLayer, g2.AttnSoftcap, g2.FinalSoftcap = "gemma2", 2, 2, 4
	g3 := base
	g3.Arch, g3.NLayer = "gemma3", 6
	g3cap := g3
	g3cap.FinalSoftcap, g3cap.RopeScaleLinear = 4, 8
	return []gemmaCase{{"gemma2", g2}, {"gemma3", g3}, {"gemma3-softcap-linear", g3cap}}
}

func writeGemma(t testing.TB, dir string, name string, cfg modelgen.GemmaConfig) string {
	t.Helper()
	path := filepath.Join(dir, name+".gguf")
	if err := modelgen.WriteGemma(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

// gemmaLoraNames lists, for every target in set, its A and B, alternating
// between the first layer (sliding-window) and the last (global).
func gemmaLoraNames(set Target, nLayer int) []string {
	var out []string
	for i, k := range targetKinds {
		if set&k.bit == 0 {
			continue
		}
		prefix := fmt.Sprintf("blk.%d.%s", (i%2)*(nLayer-1), k.kind)
		out = append(out, prefix+".weight.lora_b", prefix+".weight.lora_a")
	}
	return out
}

// TestTrainGemmaMatchesDecode: on gemma2 and gemma3 models, the training
// forward equals llama_decode bit for bit before and after training, and the
// saved adapter, reloaded by llama.cpp, reproduces the trainer's loss.
//
// Bit-exact although llama_decode's CPU GEGLU reads GELU from an F16 table
// and the soft-caps use tanhf, neither of which ggml can differentiate: the
// graph computes those ops themselves for the forward and takes only the
// gradient from a smooth composition (train.cpp's value_of_grad_of).
func TestTrainGemmaMatchesDecode(t *testing.T) {
	dir := t.TempDir()
	for _, c := range gemmaCases() {
		t.Run(c.name, func(t *testing.T) {
			m := loadPath(t, writeGemma(t, dir, c.name, c.cfg), ModelOptions{})
			tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll, Seed: 2, Threads: 2})
			b := agentBatch(t, m, trainText)
			if len(b.Tokens) < 64 {
				t.Fatalf("%d tokens: want 64, far past the sliding window of %d", len(b.Tokens), c.cfg.SlidingWindow)
			}
			toks := b.Tokens[:64]
			base, err := tr.Logits(toks)
			if err != nil {
				t.Fatal(err)
			}
			dec := decodeLogits(t, m, nil, toks)
			if d := worstDiff(base, dec); d != 0 {
				t.Fatalf("untrained: training forward and llama_decode differ by %g (want bit-identical)", d)
			}
			// The smooth GELU and tanh the gradient follows move the logits
			// by about the F16 table's resolution: visible, and small.
			tr.setSmoothForward(true)
			smooth, err := tr.Logits(toks)
			tr.setSmoothForward(false)
			if err != nil {
				t.Fatal(err)
			}
			smoothDiff := worstDiff(smooth, dec)
			if !(smoothDiff > 0 && smoothDiff < 0.05) {
				t.Fatalf("the smooth forward's logits differ from llama_decode's by %g: want in (0, 0.05)", smoothDiff)
			}
			first, after := trainFive(t, tr, b)
			got := checkReloaded(t, m, tr, b, toks, filepath.Join(dir, c.name+"-adapter.gguf"), 512, after)
			t.Logf("%s: bit-identical logits; loss %.4f -> %.4f, reloaded %.6f; the smooth forward's logits differ by %.3g",
				c.name, first, after, got, smoothDiff)
		})
	}
}

// TestTrainGemmaGradientCheck: the gradient of every LoRA target (A and B of
// q, k, v, o, gate, up, down) in a sliding-window and a global layer matches
// a finite difference of the loss, through GEGLU, the soft-caps, the
// post-norms and the two masks.
//
// The loss differentiated is that of the smooth forward (setSmoothForward):
// llama_decode's GELU on the CPU is a staircase (F16 table, steps ~5e-4
// relative), and a finite difference of it measures the table's steps, not
// a gradient: with the exact forward, the A matrices' differences (which
// move the gate inputs by ~1e-4) are 10-30% off, while the smooth forward
// agrees (see checkGemmaGradients). The graph's gradient is the same in both
// modes; that the smooth forward is the function llama_decode computes, up
// to the table's rounding, TestTrainGemmaMatchesDecode checks.
func TestTrainGemmaGradientCheck(t *testing.T) {
	dir := t.TempDir()
	// gemma3-softcap-linear's final cap is gemma2's, checked there, and its
	// RoPE scaling changes no gradient path.
	for _, c := range gemmaCases()[:2] {
		t.Run(c.name, func(t *testing.T) {
			m := loadPath(t, writeGemma(t, dir, c.name, c.cfg), ModelOptions{})
			tr := newTrainer(t, m, TrainerOptions{Rank: 4, Targets: TargetsAll, Optimizer: OptimizerSGD, Seed: 9, Threads: 2})
			tr.setSmoothForward(true)
			b := agentBatch(t, m, trainText)
			for i := 0; i < 3; i++ {
				if _, err := tr.Step(b, 0.05); err != nil {
					t.Fatal(err)
				}
			}
			checkGemmaGradients(t, tr, b, gemmaLoraNames(TargetsAll, c.cfg.NLayer))
		})
	}
}

// checkGemmaGradients is checkGradients with a tolerance of 1% for the B
// matrices: their probed elements carry large, well-conditioned gradients
// (finite differences within 0.4% here), and 5% would let a GELU derivative
// without its cubic term pass (its gate/up probes are 1-3% off). The A
// matrices keep 5%: their elements move the activations ~100× less, so the
// difference is noisier (up to ~4% here).
func checkGemmaGradients(t *testing.T, tr *Trainer, b TrainBatch, names []string) {
	t.Helper()
	loss := func() (float64, error) {
		r, err := tr.Eval(b)
		return r.Loss, err
	}
	for _, name := range names {
		p, err := tr.ProbeGradient(name, b, 1e-3, 1e-2, loss)
		if err != nil {
			t.Fatal(err)
		}
		tol := 0.05
		if strings.HasSuffix(name, ".lora_b") {
			tol = 0.01
		}
		if !p.Agrees(tol, 1e-3) {
			t.Errorf("%s%v (tolerance %g)", name, p, tol)
		} else {
			t.Logf("%s%v", name, p)
		}
	}
}

// TestTrainGemmaPackedSequencesAreIndependent: in a packed batch the
// sliding-window mask, like the causal one, keeps each sequence to itself
// (positions restart per sequence), so the packed loss is the separate
// losses' mean. Both sequences are longer than the window.
func TestTrainGemmaPackedSequencesAreIndependent(t *testing.T) {
	c := gemmaCases()[0]
	m := loadPath(t, writeGemma(t, t.TempDir(), c.name, c.cfg), ModelOptions{})
	tr := newTrainer(t, m, TrainerOptions{Rank: 4, Threads: 2})
	a := agentBatch(t, m, "Question: Who directed the film? Thought: I need to search the film. Action: search[the film]")
	b := agentBatch(t, m, "Observation: The film was directed by Ann. Thought: The answer is Ann. Action: finish[Ann]")
	if n := c.cfg.SlidingWindow; len(a.Tokens) <= 2*n || len(b.Tokens) <= 2*n {
		t.Fatalf("%d and %d tokens: want both well past the window of %d", len(a.Tokens), len(b.Tokens), n)
	}
	la, err := tr.Eval(a)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := tr.Eval(b)
	if err != nil {
		t.Fatal(err)
	}
	packed := TrainBatch{
		Tokens:   append(append([]Token(nil), a.Tokens...), b.Tokens...),
		Target:   append(append([]bool(nil), a.Target...), b.Target...),
		SeqStart: []int{0, len(a.Tokens)},
	}
	lp, err := tr.Eval(packed)
	if err != nil {
		t.Fatal(err)
	}
	want := (la.Loss*float64(la.Scored) + lb.Loss*float64(lb.Scored)) / float64(la.Scored+lb.Scored)
	if lp.Scored != la.Scored+lb.Scored || math.Abs(lp.Loss-want) > 1e-5 {
		t.Fatalf("packed loss %.6f (%d scored), separate %.6f (%d)", lp.Loss, lp.Scored, want, la.Scored+lb.Scored)
	}
}
