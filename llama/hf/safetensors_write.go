package hf

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// TensorData is one tensor to write into a safetensors file.
type TensorData struct {
	// Name is the tensor name.
	Name string
	// DType is the element type; Data holds Elements × DType.Size() bytes,
	// little-endian.
	DType DType
	// Shape is in torch order (last dimension contiguous).
	Shape []int64
	// Data is the raw tensor bytes.
	Data []byte
}

// headerEntry is the JSON form of one tensor entry.
type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes tensors (in name order, as the reference writer's
// sorted header implies) and optional string metadata to path. The header is
// padded with spaces to a multiple of 8 bytes so that the data is aligned, as
// the reference implementation does.
func WriteSafetensors(path string, tensors []TensorData, metadata map[string]string) (err error) {
	ts := append([]TensorData(nil), tensors...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr[metadataKey] = metadata
	}
	var off int64
	for i, t := range ts {
		if t.Name == metadataKey || t.Name == "" {
			return fmt.Errorf("safetensors: write %s: invalid tensor name %q", path, t.Name)
		}
		if i > 0 && ts[i-1].Name == t.Name {
			return fmt.Errorf("safetensors: write %s: tensor %q listed twice", path, t.Name)
		}
		es := t.DType.Size()
		if es == 0 {
			return fmt.Errorf("safetensors: write %s: tensor %q: dtype %q is not supported", path, t.Name, t.DType)
		}
		n := es
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: write %s: tensor %q: negative dimension in %v", path, t.Name, t.Shape)
			}
			n *= d
		}
		if n != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: write %s: tensor %q: shape %v of %s needs %d bytes, got %d", path, t.Name, t.Shape, t.DType, n, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		hdr[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("safetensors: write %s: %w", path, cerr)
		}
	}()
	bw := bufio.NewWriter(f)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	bw.Write(lenBuf[:])
	bw.Write(js)
	for _, t := range ts {
		bw.Write(t.Data)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}
