package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Encoders and decoders for the tensor types a test model needs. The
// quantizers follow ggml's reference implementations (quantize_row_*_ref in
// ggml-quants.c), which llama-quantize also uses for these types, so the
// bytes match what ggml would produce for the same input.
//
// Every float32 intermediate is written with an explicit float32
// conversion: Go may otherwise fuse a*b+c into one FMA on some platforms,
// which would make the output differ between machines.

// FloatToHalf converts a float32 to IEEE 754 binary16 bits, rounding to
// nearest, ties to even (as the F16C instruction ggml uses on x86 does).
// Values too large become infinity; NaN stays NaN.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 // quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero). The value is m*2^(exp-150) with the
		// implicit bit, and a subnormal half counts units of 2^-24.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++ // may carry into the smallest normal, which is correct
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to infinity, which is correct
	}
	return sign | uint16(h)
}

// HalfToFloat converts IEEE 754 binary16 bits to a float32 (exact).
func HalfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: mant * 2^-24, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// EncodeF32 encodes x as little-endian float32 (tensor type F32).
func EncodeF32(x []float32) []byte {
	out := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// EncodeF16 encodes x as little-endian IEEE half floats (tensor type F16),
// rounding to nearest even.
func EncodeF16(x []float32) []byte {
	out := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(out[2*i:], FloatToHalf(v))
	}
	return out
}

const qk = 32 // QK8_0 == QK4_0

// QuantizeQ8_0 quantizes x to Q8_0 blocks (an f16 scale and 32 int8
// values per block). len(x) must be a multiple of 32.
func QuantizeQ8_0(x []float32) ([]byte, error) {
	if len(x)%qk != 0 {
		return nil, fmt.Errorf("gguf: QuantizeQ8_0: %d values, not a multiple of %d", len(x), qk)
	}
	out := make([]byte, len(x)/qk*34)
	for i := 0; i < len(x)/qk; i++ {
		blk := x[i*qk : (i+1)*qk]
		o := out[i*34 : (i+1)*34]
		var amax float32
		for _, v := range blk {
			amax = max(amax, abs32(v))
		}
		d := float32(amax / 127)
		var id float32
		if d != 0 {
			id = float32(1 / d)
		}
		binary.LittleEndian.PutUint16(o, FloatToHalf(d))
		for j, v := range blk {
			// roundf rounds half away from zero, like math.Round.
			o[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
		}
	}
	return out, nil
}

// QuantizeQ4_0 quantizes x to Q4_0 blocks (an f16 scale and 32 4-bit values
// per block; element j is in the low nibble of byte j and element j+16 in
// the high nibble). len(x) must be a multiple of 32.
func QuantizeQ4_0(x []float32) ([]byte, error) {
	if len(x)%qk != 0 {
		return nil, fmt.Errorf("gguf: QuantizeQ4_0: %d values, not a multiple of %d", len(x), qk)
	}
	out := make([]byte, len(x)/qk*18)
	for i := 0; i < len(x)/qk; i++ {
		blk := x[i*qk : (i+1)*qk]
		o := out[i*18 : (i+1)*18]
		// The scale keeps the sign of the value with the largest magnitude
		// so that value maps exactly to -8, using the full 4-bit range.
		var amax, vmax float32
		for _, v := range blk {
			if amax < abs32(v) {
				amax = abs32(v)
				vmax = v
			}
		}
		d := float32(vmax / -8)
		var id float32
		if d != 0 {
			id = float32(1 / d)
		}
		binary.LittleEndian.PutUint16(o, FloatToHalf(d))
		for j := 0; j < qk/2; j++ {
			x0 := float32(blk[j] * id)
			x1 := float32(blk[qk/2+j] * id)
			o[2+j] = nibble(float32(x0+8.5)) | nibble(float32(x1+8.5))<<4
		}
	}
	return out, nil
}

// nibble is MIN(15, (int8_t)v) from quantize_row_q4_0_ref; v is >= 0.5 for
// finite input, and the lower clamp only guards against NaN/inf.
func nibble(v float32) byte {
	if !(v >= 0) {
		return 0
	}
	if v >= 15 {
		return 15
	}
	return byte(v) // truncation, like the C cast
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// Dequantize decodes n elements of type typ from data into float32. It
// supports F32, F16, BF16, Q8_0 and Q4_0; data must be exactly the size of n
// elements.
func Dequantize(typ Type, data []byte, n int) ([]float32, error) {
	if n < 0 {
		return nil, fmt.Errorf("gguf: Dequantize: negative count %d", n)
	}
	if rs := typ.RowSize(int64(n)); rs < 0 || rs != int64(len(data)) {
		return nil, fmt.Errorf("gguf: Dequantize %s: %d bytes for %d elements, need %d", typ, len(data), n, rs)
	}
	le := binary.LittleEndian
	out := make([]float32, n)
	switch typ {
	case TypeF32:
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(data[4*i:]))
		}
	case TypeF16:
		for i := range out {
			out[i] = HalfToFloat(le.Uint16(data[2*i:]))
		}
	case TypeBF16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(data[2*i:])) << 16)
		}
	case TypeQ8_0:
		for b := 0; b < n/qk; b++ {
			blk := data[b*34:]
			d := HalfToFloat(le.Uint16(blk))
			for j := 0; j < qk; j++ {
				out[b*qk+j] = float32(int8(blk[2+j])) * d
			}
		}
	case TypeQ4_0:
		for b := 0; b < n/qk; b++ {
			blk := data[b*18:]
			d := HalfToFloat(le.Uint16(blk))
			for j := 0; j < qk/2; j++ {
				out[b*qk+j] = float32(int(blk[2+j]&0x0f)-8) * d
				out[b*qk+j+qk/2] = float32(int(blk[2+j]>>4)-8) * d
			}
		}
	default:
		return nil, fmt.Errorf("gguf: Dequantize: type %s is not supported", typ)
	}
	return out, nil
}

// Encode encodes x as tensor type typ: F32, F16, Q8_0 or Q4_0.
func Encode(typ Type, x []float32) ([]byte, error) {
	switch typ {
	case TypeF32:
		return EncodeF32(x), nil
	case TypeF16:
		return EncodeF16(x), nil
	case TypeQ8_0:
		return QuantizeQ8_0(x)
	case TypeQ4_0:
		return QuantizeQ4_0(x)
	}
	return nil, fmt.Errorf("gguf: Encode: type %s is not supported", typ)
}
