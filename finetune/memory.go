package finetune

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fireact/fireact/llama"
	"github.com/fireact/fireact/llama/gguf"
)

// Matrix is one matrix the training forward multiplies by: [In, Out] in
// ggml order, Kind one of attn_q, attn_k, attn_v, attn_output, ffn_gate,
// ffn_up, ffn_down or output.
type Matrix struct {
	Kind    string
	In, Out int64
	Type    gguf.Type
}

// ModelShape is what a memory estimate needs to know of a model, all of it
// in the GGUF header (ReadModelShape): nothing is loaded.
type ModelShape struct {
	FileBytes int64
	NLayer    int
	NEmbd     int64
	NHead     int64
	NVocab    int64
	NEmbdKV   int64 // width of K and V (head size × key/value heads)
	NFF       int64 // feed-forward width
	// Matrices lists every layer's seven projections (phi3's four fused
	// ones) and the output matrix
	// (token_embd.weight's shape and type when the output is tied).
	Matrices []Matrix
}

// projectionKinds are a llama block's matrices, in train.h's target order.
var projectionKinds = []struct {
	kind   string
	target llama.Target
}{{"attn_q", llama.TargetQ}, {"attn_k", llama.TargetK}, {"attn_v", llama.TargetV}, {"attn_output", llama.TargetO},
	{"ffn_gate", llama.TargetGate}, {"ffn_up", llama.TargetUp}, {"ffn_down", llama.TargetDown}, {"output", llama.TargetOutput}}

// fusedProjectionKinds are a phi3 block's matrices: Q/K/V in one, and
// ffn_up holding the gate rows too (2·n_ff).
var fusedProjectionKinds = []struct {
	kind   string
	target llama.Target
}{{"attn_qkv", llama.TargetQKV}, {"attn_output", llama.TargetO}, {"ffn_up", llama.TargetUp}, {"ffn_down", llama.TargetDown}}

// ReadModelShape reads a model's shape from its GGUF header.
func ReadModelShape(path string) (ModelShape, error) {
	f, err := gguf.Read(path)
	if err != nil {
		return ModelShape{}, fmt.Errorf("finetune: memory estimate: %w", err)
	}
	s := ModelShape{FileBytes: f.FileSize}
	arch := f.Architecture()
	if arch == "" {
		return s, fmt.Errorf("finetune: memory estimate: %s has no general.architecture", path)
	}
	n, ok := f.Uint(arch + ".block_count")
	if !ok || n == 0 {
		return s, fmt.Errorf("finetune: memory estimate: %s: %s.block_count missing or 0", path, arch)
	}
	s.NLayer = int(n)
	h, _ := f.Uint(arch + ".attention.head_count")
	s.NHead = int64(h)
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || len(emb.Shape) != 2 {
		return s, fmt.Errorf("finetune: memory estimate: %s has no 2-D token_embd.weight", path)
	}
	s.NEmbd, s.NVocab = int64(emb.Shape[0]), int64(emb.Shape[1])
	kinds := projectionKinds[:7]
	_, fused := f.Tensor("blk.0.attn_qkv.weight")
	if fused {
		kinds = fusedProjectionKinds
	}
	for il := 0; il < s.NLayer; il++ {
		for _, k := range kinds {
			name := fmt.Sprintf("blk.%d.%s.weight", il, k.kind)
			t, ok := f.Tensor(name)
			if !ok || len(t.Shape) != 2 {
				return s, fmt.Errorf("finetune: memory estimate: %s: tensor %s missing or not 2-D", path, name)
			}
			s.Matrices = append(s.Matrices, Matrix{Kind: k.kind, In: int64(t.Shape[0]), Out: int64(t.Shape[1]), Type: t.Type})
			switch k.kind {
			case "attn_k":
				s.NEmbdKV = max(s.NEmbdKV, int64(t.Shape[1]))
			case "ffn_up":
				ff := int64(t.Shape[1])
				if fused {
					ff /= 2 // the gate rows, then up
				}
				s.NFF = max(s.NFF, ff)
			case "attn_qkv": // q (n_embd rows), then k and v
				s.NEmbdKV = max(s.NEmbdKV, (int64(t.Shape[1])-s.NEmbd)/2)
			}
		}
	}
	out, ok := f.Tensor("output.weight")
	if !ok {
		out = emb // tied: llama.cpp multiplies by token_embd
	}
	s.Matrices = append(s.Matrices, Matrix{Kind: "output", In: int64(out.Shape[0]), Out: int64(out.Shape[1]), Type: out.Type})
	return s, nil
}

// MemoryPlan is what decides a training step's memory besides the model.
type MemoryPlan struct {
	Backward llama.Backward // "" is the trainer's default, transient
	// Tokens is the size of one step's graph: the largest packed micro-batch.
	Tokens    int
	Rank      int
	Targets   llama.Target
	Optimizer llama.Optimizer
	F32Head   bool
	F32Base   bool
	Full      bool
	// Checkpoint is gradient checkpointing: the activations of the
	// CheckpointKeep top blocks and of one recomputed block at a time, plus
	// the recomputed blocks' inputs kept on the host.
	Checkpoint bool
	// CheckpointKeep is llama.TrainerOptions.CheckpointKeep: with
	// Checkpoint, the top blocks whose activations are kept (below 1: 1).
	CheckpointKeep int
}

// MemoryEstimate is an estimate of a training process's peak resident
// memory, in bytes, by part.
type MemoryEstimate struct {
	// Model is the GGUF file: mapped, and every page is read each step.
	Model int64
	// Copies are the trainer's persistent F32 (or Q8_0) copies of frozen
	// weights: F16 ones always, the head with F32Head, all with F32Base, the
	// transposed ones of the transposed backward modes.
	Copies int64
	// Trainable is LoRA's A and B (or, with Full, every weight) with their
	// optimizer moments, gradient accumulators and step gradients.
	Trainable int64
	// Activations are the step graph's tensors: what the forward keeps for
	// the backward, the attention scores (T² per head), the logits and their
	// gradient, a transient weight of the transient backward, and the host
	// copies of the mask and labels.
	Activations int64
	// Overhead is the process itself, the reference context, ggml's graph
	// metadata, and the host buffers the transposed copies are made through.
	Overhead int64
}

// Total is the estimated peak.
func (e MemoryEstimate) Total() int64 {
	return e.Model + e.Copies + e.Trainable + e.Activations + e.Overhead
}

// Calibration of EstimateMemory against BenchmarkTrainStep's peak RSS (see
// TestEstimateMemoryCalibration for the measured rows and how far each
// estimate is from them).
const (
	// Floats the step graph holds at its peak per token and layer, per unit
	// of width: what the forward keeps for the backward (the residual stream
	// and the norms' outputs, the roped Q and K, V transposed, the attention
	// output; SwiGLU's gate, up and product) and the backward's own working
	// set. Fitted: 1.33 MiB a token at the 0.1B shape, against 1.40 here.
	actPerEmbd = 7
	actPerKV   = 2
	actPerFF   = 3
	// Attention-score tensors of n_head × T × T floats per layer at the
	// peak: the softmax, kept for the backward (measured: 0.3 to 0.7 of one).
	actScoreTensors = 1
	// Vocabulary-wide rows per scored token: logits, the loss's softmax, its
	// gradient, the one-hot labels on the device and on the host.
	actVocabRows = 5
	// initBuffers is the F32 host buffers of the largest matrix the
	// transposed modes make their copies through (read, then transposed).
	initBuffers = 2
	// baseOverhead is the Go runtime, llama.cpp's model and vocabulary
	// structures and ggml's graph metadata.
	baseOverhead = 96 << 20
	// transientChunkBytes is train.cpp's transient_chunk_bytes.
	transientChunkBytes = 32 << 20
)

// EstimateMemory estimates the peak resident memory of training a model of
// shape s as p says. It is deliberately simple (sums of tensor sizes with
// constants fitted to measured runs), meant to tell "fits" from "does not
// fit" before anything is allocated, not to the last megabyte.
func EstimateMemory(s ModelShape, p MemoryPlan) MemoryEstimate {
	var e MemoryEstimate
	e.Model = s.FileBytes
	T, S := int64(max(p.Tokens, 1)), int64(max(p.Tokens, 1)) // every token scored: the worst case
	backward := p.Backward
	if backward == "" {
		backward = llama.BackwardTransient
	}
	moments := int64(4) // the tensor, AdamW's m and v, the accumulator
	if p.Optimizer == llama.OptimizerSGD {
		moments = 2
	}
	var largest int64
	var weightF32 int64 // F32 bytes of every frozen matrix
	for _, m := range s.Matrices {
		n := m.In * m.Out
		largest = max(largest, n)
		weightF32 += 4 * n
		if p.Full {
			continue
		}
		isF32 := m.Type == gguf.TypeF32
		copied := m.Type == gguf.TypeF16 || m.Type == gguf.TypeBF16 ||
			(!isF32 && (p.F32Base || (m.Kind == "output" && p.F32Head)))
		if copied {
			e.Copies += 4 * n
		}
		switch backward {
		case llama.BackwardTransposed:
			e.Copies += 4 * n
		case llama.BackwardTransposedQ8:
			e.Copies += n * 34 / 32
		}
	}
	if p.Full {
		// The weights themselves (read into memory, no mmap) plus moments,
		// accumulators and step gradients of every F32 tensor.
		e.Trainable = (moments + 1) * weightF32
	} else {
		r := int64(max(p.Rank, 1))
		targets := p.Targets
		if targets == 0 {
			targets = llama.TargetsQV
		}
		for _, m := range s.Matrices {
			if targets&targetOf(m.Kind) != 0 {
				e.Trainable += (moments + 1) * 4 * r * (m.In + m.Out)
				e.Activations += 4 * T * r // A·x, kept for B's gradient
			}
		}
	}
	perToken := actPerEmbd*s.NEmbd + actPerKV*s.NEmbdKV + actPerFF*s.NFF
	live := int64(s.NLayer) // blocks whose activations the step holds at once
	if p.Checkpoint && !p.Full {
		live = int64(min(max(p.CheckpointKeep, 1), max(s.NLayer, 1)))
		// The recomputed blocks' inputs, and the gradient passed down, on
		// the host.
		e.Activations += 4 * T * s.NEmbd * (int64(s.NLayer) - live + 2)
	}
	e.Activations += 4 * T * live * perToken
	e.Activations += 4 * actScoreTensors * live * s.NHead * T * T
	e.Activations += 4 * actVocabRows * S * s.NVocab
	e.Activations += 2 * 4 * T * T // the mask, on the host and in the graph
	switch {
	case p.Full:
	case backward == llama.BackwardTransient:
		// One weight at a time dequantized and transposed inside the graph,
		// a large one in row blocks of 32 MiB (train.cpp's
		// transient_chunk_bytes): the allocator reuses one block's F32
		// transpose, which the CPU makes in one pass (a GPU's cast and cont
		// hold twice that, in its own memory).
		e.Activations += min(4*largest, transientChunkBytes)
	case backward == llama.BackwardTransposed || backward == llama.BackwardTransposedQ8:
		e.Overhead += initBuffers * 4 * largest
	}
	// The reference context: 256 cells of F16 K and V, and logits for 32.
	e.Overhead += baseOverhead + 256*2*2*int64(s.NLayer)*s.NEmbdKV + 4*32*s.NVocab
	return e
}

// targetOf is the target bit of a matrix kind.
func targetOf(kind string) llama.Target {
	for _, k := range projectionKinds {
		if k.kind == kind {
			return k.target
		}
	}
	for _, k := range fusedProjectionKinds {
		if k.kind == kind {
			return k.target
		}
	}
	return 0
}

// MemoryAvailable returns how much memory this process can still use: the
// kernel's MemAvailable, or less when a cgroup v2 limit (memory.max minus
// memory.current) leaves less.
func MemoryAvailable() (int64, error) {
	return memoryAvailable("/proc/meminfo", "/sys/fs/cgroup")
}

// memoryAvailable is MemoryAvailable reading meminfo and a cgroup v2
// directory (where memory.max may be "max" or absent: no limit).
func memoryAvailable(meminfo, cgroup string) (int64, error) {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0, fmt.Errorf("finetune: available memory: %w", err)
	}
	defer f.Close()
	have := int64(-1)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		var kb int64
		if len(fields) == 2 && fields[1] == "kB" {
			kb, err = strconv.ParseInt(fields[0], 10, 64)
		}
		if len(fields) != 2 || fields[1] != "kB" || err != nil || kb < 0 {
			return 0, fmt.Errorf("finetune: available memory: %s:%d: MemAvailable %q is not a size in kB", meminfo, line, strings.TrimSpace(rest))
		}
		have = kb << 10
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("finetune: available memory: %s: %w", meminfo, err)
	}
	if have < 0 {
		return 0, fmt.Errorf("finetune: available memory: %s has no MemAvailable line", meminfo)
	}
	limit, err := readCgroupInt(filepath.Join(cgroup, "memory.max"))
	if err != nil || limit < 0 {
		return have, err
	}
	used, err := readCgroupInt(filepath.Join(cgroup, "memory.current"))
	if err != nil {
		return have, err
	}
	return min(have, max(limit-max(used, 0), 0)), nil
}

// readCgroupInt reads a cgroup file holding one integer; -1 for "max" or a
// missing file (no limit, or no cgroup v2).
func readCgroupInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("finetune: available memory: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("finetune: available memory: %s: %q is not a byte count", path, s)
	}
	return n, nil
}

// gib formats bytes in GiB for messages.
func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// memoryRefusal returns nil when plan fits in have bytes, and otherwise the
// error that stops training: what it needs, what there is, and the settings
// of the flags (--backward, --f32-head/--f32-base, --max-tokens/--cutoff)
// that would fit.
func memoryRefusal(s ModelShape, p MemoryPlan, cutoff int, have int64) error {
	e := EstimateMemory(s, p)
	if e.Total() <= have {
		return nil
	}
	var fits []string
	try := func(q MemoryPlan, flags string) bool {
		if n := EstimateMemory(s, q).Total(); n <= have {
			fits = append(fits, fmt.Sprintf("%s (≈%s)", flags, gib(n)))
			return true
		}
		return false
	}
	lean := p
	leanFlags := ""
	if !p.Full && p.Backward != "" && p.Backward != llama.BackwardTransient {
		lean.Backward = llama.BackwardTransient
		leanFlags = "--backward transient"
		try(lean, leanFlags)
	}
	if p.F32Head || p.F32Base {
		lean.F32Head, lean.F32Base = false, false
		leanFlags = strings.TrimSpace(leanFlags + " without --f32-head/--f32-base")
		try(lean, leanFlags)
	}
	if !p.Full && !p.Checkpoint {
		alone := p
		alone.Checkpoint = true
		try(alone, "--gradient-checkpointing on")
		lean.Checkpoint = true
		if leanFlags != "" {
			leanFlags += " --gradient-checkpointing on"
			try(lean, leanFlags)
		} else {
			leanFlags = "--gradient-checkpointing on"
		}
	}
	for t := p.Tokens / 2; t >= 64 && len(fits) == 0; t /= 2 {
		q := lean
		q.Tokens = t
		flags := fmt.Sprintf("--max-tokens %d", t)
		if cutoff > t {
			flags += fmt.Sprintf(" --cutoff %d", t)
		}
		if leanFlags != "" {
			flags = leanFlags + " " + flags
		}
		try(q, flags)
	}
	suggest := "nothing smaller fits: the model file alone is " + gib(e.Model)
	if len(fits) > 0 {
		suggest = "would fit: " + strings.Join(fits, "; or ")
	}
	backward := p.Backward
	if backward == "" {
		backward = llama.BackwardTransient
	}
	ckpt := ""
	if p.Checkpoint {
		ckpt = ", gradient checkpointing"
	}
	return fmt.Errorf("finetune: training needs ≈%s, have %s (model %s, weight copies %s, trainable %s, activations %s for micro-batches of up to %d tokens, backward %s%s); %s; --ignore-memory-check trains anyway",
		gib(e.Total()), gib(have), gib(e.Model), gib(e.Copies), gib(e.Trainable), gib(e.Activations), p.Tokens, backward, ckpt, suggest)
}

// Checkpointing says when training steps use gradient checkpointing
// (llama.TrainerOptions.GradientCheckpointing). Steps are the same
// computation either way, so the choice changes memory and time only, never
// the adapter: it is not part of a job's fingerprint.
type Checkpointing string

const (
	// CheckpointingAuto (the default, "") turns it on only when the
	// estimated peak without it exceeds the memory there is and the peak
	// with it does not.
	CheckpointingAuto Checkpointing = "auto"
	// CheckpointingOn always recomputes blocks: least memory.
	CheckpointingOn Checkpointing = "on"
	// CheckpointingOff never does: fastest.
	CheckpointingOff Checkpointing = "off"
)

// ParseCheckpointing checks a --gradient-checkpointing value ("" is auto).
func ParseCheckpointing(s string) (Checkpointing, error) {
	switch c := Checkpointing(strings.ToLower(s)); c {
	case "", CheckpointingAuto:
		return CheckpointingAuto, nil
	case CheckpointingOn, CheckpointingOff:
		return c, nil
	}
	return "", fmt.Errorf("finetune: gradient checkpointing %q: want auto, on or off", s)
}

// checkpointPlan is how a job's steps use gradient checkpointing: whether,
// and how many top blocks keep their activations
// (llama.TrainerOptions.CheckpointKeep).
type checkpointPlan struct {
	on   bool
	keep int
}

// checkMemory decides gradient checkpointing and refuses, before the trainer
// allocates anything, a job whose estimated peak exceeds the memory there
// is. A step's graph holds one packed micro-batch: at most MaxTokens, and
// never more than all the training tokens together. Auto checkpointing
// recomputes only as many blocks as it must: it keeps the activations of as
// many top blocks as the estimate fits in the memory there is, each one a
// block's forward less per step.
func (c *Config) checkMemory(d *data) (plan checkpointPlan, err error) {
	mode, err := ParseCheckpointing(string(c.GradientCheckpointing))
	if err != nil {
		return plan, err
	}
	plan = checkpointPlan{on: mode == CheckpointingOn && !c.Full, keep: 1}
	if c.IgnoreMemoryCheck && mode != CheckpointingAuto {
		return plan, nil
	}
	s, err := ReadModelShape(c.Base)
	if err != nil {
		// A layout the estimate does not know (MoE) is one the
		// trainer refuses with its own, more precise reason.
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "memory check skipped: %v\n", err)
		}
		return plan, nil
	}
	have := c.MemoryAvailable
	if have <= 0 {
		if have, err = MemoryAvailable(); err != nil {
			// A system whose memory cannot be read (not Linux) trains
			// unchecked, as before the check existed; say so.
			if c.Progress != nil {
				fmt.Fprintf(c.Progress, "memory check skipped: %v\n", err)
			}
			return plan, nil
		}
	}
	p := MemoryPlan{Backward: c.Backward, Tokens: min(c.MaxTokens, max(d.trainTokens, 2)), Rank: c.Rank, Targets: c.Targets,
		Optimizer: c.Optimizer, F32Head: c.F32Head, F32Base: c.F32Base, Full: c.Full, Checkpoint: plan.on, CheckpointKeep: plan.keep}
	if mode == CheckpointingAuto && !c.Full {
		without := EstimateMemory(s, p).Total()
		q := p
		q.Checkpoint = true
		if with := EstimateMemory(s, q).Total(); without > have && with <= have {
			// The estimate grows with keep: the largest that fits.
			keep := 1
			for k := s.NLayer - 1; k > 1; k-- {
				q.CheckpointKeep = k
				if e := EstimateMemory(s, q).Total(); e <= have {
					keep, with = k, e
					break
				}
			}
			q.CheckpointKeep = keep
			p, plan = q, checkpointPlan{on: true, keep: keep}
			if c.Progress != nil {
				fmt.Fprintf(c.Progress, "gradient checkpointing on for %d of %d blocks: ≈%s without it, ≈%s with it, have %s\n",
					s.NLayer-plan.keep, s.NLayer, gib(without), gib(with), gib(have))
			}
		}
	}
	if c.IgnoreMemoryCheck {
		return plan, nil
	}
	return plan, memoryRefusal(s, p, c.Cutoff, have)
}
