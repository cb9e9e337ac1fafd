package llama

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fireact/fireact/llama/gguf"
)

// MergeLoRA is one adapter to merge into a model and the scale to merge it
// with (as Context.SetAdapter's scale: 1 applies the adapter as trained).
type MergeLoRA struct {
	Path  string
	Scale float32
}

// MergeOptions tune Merge.
type MergeOptions struct {
	// Type is the output type, one of QuantTypes() (e.g. "f16", "q8_0",
	// "q4_k_m"); "" keeps the base's general.file_type.
	Type string
	// Threads for the quantizer; <= 0 uses every CPU.
	Threads int
}

// mergeDelta is one adapter's contribution to one base tensor.
type mergeDelta struct {
	file  *os.File
	path  string
	a, b  gguf.TensorInfo
	data  int64 // the adapter file's data offset
	scale float32
}

// Merge writes to out the model at base with the LoRA adapters added into
// its weights, W' = W + Σ scale·alpha/r·B·A (llama.cpp's own formula, so the
// merged model computes what base+adapters computes at run time), then
// converted to opts.Type by llama.cpp's quantizer. It is for runtimes that
// cannot load an adapter.
//
// The adapted base tensors are dequantized in Go, which supports F32, F16,
// BF16, Q8_0 and Q4_0 bases; merge into an F16 or F32 base and quantize the
// result for the best quality. Embedding adapters are not supported.
func Merge(ctx context.Context, base string, adapters []MergeLoRA, out string, opts MergeOptions) (err error) {
	if len(adapters) == 0 {
		return errors.New("llama: merge: no adapters")
	}
	bf, err := gguf.Read(base)
	if err != nil {
		return fmt.Errorf("llama: merge: %w", err)
	}
	if t, _ := bf.String("general.type"); t == "adapter" {
		return fmt.Errorf("llama: merge: %s is an adapter, not a model", base)
	}
	typ := strings.ToLower(opts.Type)
	if typ == "" {
		ft, _ := bf.Uint("general.file_type")
		for name, v := range quantTypes {
			if uint64(v) == ft {
				typ = name
			}
		}
		if typ == "" {
			return fmt.Errorf("llama: merge: %s: general.file_type %d has no type name; choose one of %s", base, ft, strings.Join(QuantTypes(), ", "))
		}
	}
	if _, ok := quantTypes[typ]; !ok {
		return fmt.Errorf("llama: merge: unknown type %q (want one of %s)", opts.Type, strings.Join(QuantTypes(), ", "))
	}

	deltas := map[string][]mergeDelta{}
	for _, ad := range adapters {
		af, err := gguf.Read(ad.Path)
		if err != nil {
			return fmt.Errorf("llama: merge: %w", err)
		}
		info, err := ValidateAdapter(bf, af)
		if err != nil {
			return fmt.Errorf("llama: merge: %s: %w", ad.Path, err)
		}
		fh, err := os.Open(ad.Path)
		if err != nil {
			return fmt.Errorf("llama: merge: %w", err)
		}
		defer fh.Close()
		for _, name := range info.Targets {
			if name == "token_embd.weight" {
				return fmt.Errorf("llama: merge: %s: tensor %q: embedding adapters are not supported", ad.Path, name)
			}
			a, _ := af.Tensor(name + ".lora_a")
			b, _ := af.Tensor(name + ".lora_b")
			scale := ad.Scale
			if info.Alpha != 0 {
				// llama-adapter.cpp: scale * alpha / rank, rank = lora_a->ne[1].
				scale = ad.Scale * info.Alpha / float32(a.Shape[1])
			}
			deltas[name] = append(deltas[name], mergeDelta{file: fh, path: ad.Path, a: a, b: b, data: af.DataOffset, scale: scale})
		}
	}
	for name := range deltas {
		bt, _ := bf.Tensor(name)
		switch bt.Type {
		case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ4_0:
		default:
			return fmt.Errorf("llama: merge: %s: tensor %q is %s; merging needs an F32, F16, BF16, Q8_0 or Q4_0 base (merge into the F16 model, then quantize)", base, name, bt.Type)
		}
	}

	bfh, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("llama: merge: %w", err)
	}
	defer bfh.Close()
	tmp, err := os.CreateTemp(filepath.Dir(out), ".fireact-merge-*.gguf")
	if err != nil {
		return fmt.Errorf("llama: merge: %w", err)
	}
	tmpPath := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpPath)

	w := gguf.NewWriter()
	for _, kv := range bf.KVs {
		if err := w.Set(kv.Key, kv.Value); err != nil {
			return fmt.Errorf("llama: merge: %w", err)
		}
	}
	for _, t := range bf.Tensors {
		src := io.NewSectionReader(bfh, bf.DataOffset+int64(t.Offset), t.Size())
		ds, adapted := deltas[t.Name]
		if !adapted {
			if err := w.AddTensorFunc(t.Name, t.Type, t.Shape, func(dst io.Writer) error {
				_, err := io.Copy(dst, src)
				return err
			}); err != nil {
				return fmt.Errorf("llama: merge: %w", err)
			}
			continue
		}
		// Merged tensors are written as F32; the quantizer then converts them
		// to the output type like every other weight.
		if err := w.AddTensorFunc(t.Name, gguf.TypeF32, t.Shape, func(dst io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			merged, err := mergeTensor(src, t, ds)
			if err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
			_, err = dst.Write(gguf.EncodeF32(merged))
			return err
		}); err != nil {
			return fmt.Errorf("llama: merge: %w", err)
		}
	}
	if err := w.WriteFile(tmpPath); err != nil {
		return fmt.Errorf("llama: merge %s: %w", base, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := Quantize(tmpPath, out, typ, opts.Threads); err != nil {
		return fmt.Errorf("llama: merge: %w", err)
	}
	return nil
}

// readTensor reads and dequantizes a tensor at absolute offset off.
func readTensor(r io.ReaderAt, off int64, t gguf.TensorInfo) ([]float32, error) {
	buf := make([]byte, t.Size())
	if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil, err
	}
	return gguf.Dequantize(t.Type, buf, int(t.Elements()))
}

// mergeTensor returns W + Σ scale·B·A for a base tensor of ggml shape
// [in, out] (out rows of in values), lora_a [in, r] (r rows of in) and
// lora_b [r, out] (out rows of r).
func mergeTensor(src io.ReaderAt, t gguf.TensorInfo, ds []mergeDelta) ([]float32, error) {
	w, err := readTensor(src, 0, t)
	if err != nil {
		return nil, err
	}
	in, out := int(t.Shape[0]), int(t.Shape[1])
	for _, d := range ds {
		a, err := readTensor(d.file, d.data+int64(d.a.Offset), d.a)
		if err != nil {
			return nil, fmt.Errorf("%s: lora_a: %w", d.path, err)
		}
		b, err := readTensor(d.file, d.data+int64(d.b.Offset), d.b)
		if err != nil {
			return nil, fmt.Errorf("%s: lora_b: %w", d.path, err)
		}
		r := int(d.a.Shape[1])
		for o := 0; o < out; o++ {
			row := w[o*in : (o+1)*in]
			for k := 0; k < r; k++ {
				c := d.scale * b[o*r+k]
				ak := a[k*in : (k+1)*in]
				for i := range row {
					row[i] += c * ak[i]
				}
			}
		}
	}
	return w, nil
}
