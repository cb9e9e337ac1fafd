package llama

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fireact/fireact/llama/gguf"
	"github.com/fireact/fireact/llama/modelgen"
)

// trainShape is a model shape for training benchmarks and the type its
// matrices are quantized to. FIREACT_BENCH_TRAIN selects 0.5b (Qwen2.5-0.5B's
// shape), 1.1b (TinyLlama's, Q8_0) or 7b (Llama-2-7B's, Q4_K_M: about 4 GB,
// made through a 13 GB F16 file, minutes per step on 2 cores); the default is
// a ~0.1B shape that runs in seconds.
func trainShape() (string, modelgen.LlamaConfig, string, error) {
	name := os.Getenv("FIREACT_BENCH_TRAIN")
	if name == "" {
		name = "0.1b"
	}
	var cfg modelgen.LlamaConfig
	vocab := 32000
	switch name {
	case "0.1b":
		cfg = modelgen.LlamaConfig{NEmbd: 768, NLayer: 12, NHead: 12, NHeadKV: 4, NFF: 2048}
	case "1.1b":
		// TinyLlama-1.1B's shape.
		cfg = modelgen.LlamaConfig{NEmbd: 2048, NLayer: 22, NHead: 32, NHeadKV: 4, NFF: 5632}
	case "0.5b":
		cfg = modelgen.LlamaConfig{Arch: "qwen2", NEmbd: 896, NLayer: 24, NHead: 14, NHeadKV: 2, NFF: 4864, TiedOutput: true}
		vocab = 151936
	case "7b":
		// Llama-2-7B's shape; F16 so the quantizer has full-precision input.
		cfg = modelgen.LlamaConfig{NEmbd: 4096, NLayer: 32, NHead: 32, NHeadKV: 32, NFF: 11008, WeightType: gguf.TypeF16,
			EmbedType: gguf.TypeF16, OutputType: gguf.TypeF16}
	default:
		return "", cfg, "", fmt.Errorf("FIREACT_BENCH_TRAIN=%q: want 0.1b, 0.5b, 1.1b or 7b", name)
	}
	v, err := modelgen.SPMVocab(modelgen.BasicWords()).Pad(vocab)
	if err != nil {
		return "", cfg, "", err
	}
	cfg.Vocab, cfg.NCtx, cfg.Seed, cfg.Name = v, 4096, 1, "bench-"+name
	// FIREACT_BENCH_TRAIN_LAYERS keeps the shape's width with fewer blocks:
	// with gradient checkpointing the peak above the file grows by only one
	// block input (T × n_embd floats) per block, so a few blocks measure it.
	if v := os.Getenv("FIREACT_BENCH_TRAIN_LAYERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return "", cfg, "", fmt.Errorf("FIREACT_BENCH_TRAIN_LAYERS=%q: want a positive number", v)
		}
		cfg.NLayer = n
		name = fmt.Sprintf("%s-%dblocks", name, n)
	}
	typ := "q8_0"
	if strings.HasPrefix(name, "7b") {
		typ = "q4_k_m"
	}
	// FIREACT_BENCH_TRAIN_Q4_0=1 writes every matrix in Q4_0 directly (about
	// the size of Q4_K_M) instead of an F16 file to quantize: the 7B shape's
	// F16 file alone takes longer to write than a step takes.
	if os.Getenv("FIREACT_BENCH_TRAIN_Q4_0") == "1" {
		cfg.WeightType, cfg.EmbedType, cfg.OutputType = gguf.TypeQ4_0, gguf.TypeQ4_0, gguf.TypeQ4_0
		typ = "q4_0"
	}
	return name, cfg, typ, nil
}

// peakRSS returns VmHWM (peak resident memory) in MiB and resets it, so each
// measurement sees only its own peak (Linux: writing 5 to clear_refs).
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	var kb float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ = strconv.ParseFloat(strings.Fields(rest)[0], 64)
		}
	}
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return kb / 1024
}

// trainRow is one configuration BenchmarkTrainStep measures.
type trainRow struct {
	backward   Backward
	checkpoint bool
}

func (r trainRow) String() string {
	if r.checkpoint {
		return string(r.backward) + "+checkpoint"
	}
	return string(r.backward)
}

// BenchmarkTrainStep measures LoRA training on a quantized model (rank 8, all
// seven projections, every token scored) at T = 256, 512, 1024 (the
// larger shapes at the length their memory goal names): train tokens/s, the
// step/forward time ratio (goal <= 3), peak memory, and peak memory above the
// model file (the goals: 1.1B Q8_0 at T=256 <= file + 1.5 GiB, 7B Q4_K_M at
// T=512 <= file + 3 GiB). The "outprod" rows are the same-run baseline:
// ggml's own backward through frozen weights. FIREACT_BENCH_TRAIN_ROWS=fast
// leaves out the transposed and outprod rows (which need the most memory and
// time at the large shapes), =checkpoint keeps only the first row;
// FIREACT_BENCH_TRAIN_MODEL uses a model file made before instead of making
// one.
func BenchmarkTrainStep(b *testing.B) {
	name, cfg, typ, err := trainShape()
	if err != nil {
		b.Fatal(err)
	}
	// FIREACT_BENCH_TRAIN_MODEL names a model file of the shape already made
	// (the 7B one takes longer to make than to measure).
	quant := os.Getenv("FIREACT_BENCH_TRAIN_MODEL")
	if quant == "" {
		dir := b.TempDir()
		full := filepath.Join(dir, "full.gguf")
		if err := modelgen.WriteLlama(full, cfg); err != nil {
			b.Fatal(err)
		}
		quant = filepath.Join(dir, typ+".gguf")
		if cfg.WeightType == gguf.TypeQ4_0 {
			quant = full // written in its type
		} else {
			if err := Quantize(full, quant, typ, 0); err != nil {
				b.Fatal(err)
			}
			os.Remove(full)
		}
	}
	st, err := os.Stat(quant)
	if err != nil {
		b.Fatal(err)
	}
	fileMiB := float64(st.Size()) / (1 << 20)
	m, err := LoadModel(quant, ModelOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	lens := []int{256, 512, 1024}
	switch name {
	case "1.1b", "0.5b":
		lens = []int{256}
	case "7b":
		lens = []int{512}
	}
	if strings.HasPrefix(name, "7b-") {
		lens = []int{512}
	}
	rows := []trainRow{{BackwardTransient, true}, {BackwardTransient, false}, {BackwardTransposed, false},
		{BackwardTransposedQ8, false}, {BackwardOutProd, false}}
	switch os.Getenv("FIREACT_BENCH_TRAIN_ROWS") {
	case "fast":
		rows = rows[:2]
	case "checkpoint":
		rows = rows[:1]
	}
	// The head as finetune leaves it by default (quantized, transient in the
	// backward like every other weight); FIREACT_BENCH_TRAIN_F32HEAD=1 keeps
	// an F32 copy, as the rows before the transient backward did.
	f32Head := os.Getenv("FIREACT_BENCH_TRAIN_F32HEAD") == "1"
	// FIREACT_BENCH_TRAIN_KEEP=N keeps the top N blocks' activations in the
	// checkpointed rows (TrainerOptions.CheckpointKeep; finetune's auto
	// picks the largest N that fits the memory there is).
	keep := 1
	if v := os.Getenv("FIREACT_BENCH_TRAIN_KEEP"); v != "" {
		if keep, err = strconv.Atoi(v); err != nil || keep < 1 {
			b.Fatalf("FIREACT_BENCH_TRAIN_KEEP=%q: want a positive number", v)
		}
	}
	for _, row := range rows {
		for _, T := range lens {
			label := row.String()
			if row.checkpoint && keep > 1 {
				label += fmt.Sprintf("-keep%d", keep)
			}
			b.Run(fmt.Sprintf("%s-%s/%s/T=%d", name, typ, label, T), func(b *testing.B) {
				peakRSS()
				tr, err := NewTrainer(m, TrainerOptions{Rank: 8, Targets: TargetsAll, F32Head: f32Head, Backward: row.backward,
					GradientCheckpointing: row.checkpoint, CheckpointKeep: keep})
				if err != nil {
					b.Fatal(err)
				}
				defer tr.Close()
				toks := make([]Token, T)
				tg := make([]bool, T)
				for i := range toks {
					toks[i] = Token(3 + (i*7919)%(m.Info().NVocab-3))
					tg[i] = i > 0
				}
				batch := TrainBatch{Tokens: toks, Target: tg}
				// Warm-up step (allocations), then time forward-only and full
				// steps. The 7B shape skips it: minutes a step, against
				// allocations of well under a second.
				if !strings.HasPrefix(name, "7b") {
					if _, err := tr.Step(batch, 1e-4); err != nil {
						b.Fatal(err)
					}
				}
				var fwd, step time.Duration
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					if _, err := tr.Eval(batch); err != nil {
						b.Fatal(err)
					}
					fwd += time.Since(t0)
					t0 = time.Now()
					if _, err := tr.Step(batch, 1e-4); err != nil {
						b.Fatal(err)
					}
					step += time.Since(t0)
				}
				peak := peakRSS()
				b.ReportMetric(float64(b.N*T)/step.Seconds(), "train-tok/s")
				b.ReportMetric(step.Seconds()/fwd.Seconds(), "step/forward")
				b.ReportMetric(peak, "peak-MiB")
				b.ReportMetric(peak-fileMiB, "above-file-MiB")
			})
		}
	}
}
