package gguf

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFloatToHalf(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.1, 0x2e66},
		{65504, 0x7bff},
		{65519, 0x7bff}, // below the halfway point to 65536
		{65520, 0x7c00}, // tie, rounds to even (infinity)
		{1e10, 0x7c00},  // overflow
		{float32(math.Inf(-1)), 0xfc00},
		{float32(math.NaN()), 0x7e00},
		{0x1p-14, 0x0400},        // smallest normal
		{0x1p-24, 0x0001},        // smallest subnormal
		{0x1p-25, 0x0000},        // tie between 0 and 1 ulp: even (0)
		{0x1.8p-24, 0x0002},      // tie between 1 and 2: even (2)
		{0x1.000002p-25, 0x0001}, // just above the tie
		{1e-10, 0x0000},          // underflow
		{1 + 0x1p-11, 0x3c00},    // tie at 1.0: even
		{1 + 0x1.8p-10, 0x3c02},  // tie between 1+ulp and 1+2ulp: even
		{0x1.ffep-15, 0x0400},    // subnormal rounding up into the normal range
	}
	for _, c := range cases {
		if got := FloatToHalf(c.in); got != c.want {
			t.Errorf("FloatToHalf(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	// Every finite half converts to a float32 and back unchanged.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN payloads are canonicalized
		}
		if got := FloatToHalf(HalfToFloat(uint16(h))); got != uint16(h) {
			t.Fatalf("round trip %#04x -> %g -> %#04x", h, HalfToFloat(uint16(h)), got)
		}
	}
}

func TestQuantizeKnown(t *testing.T) {
	x := make([]float32, 32)
	for j := range x {
		x[j] = float32(j - 16)
	}
	q4, err := QuantizeQ4_0(x)
	if err != nil {
		t.Fatal(err)
	}
	// d = -16/-8 = 2 (f16 0x4000); element j -> trunc((j-16)/2 + 8.5), max 15.
	if q4[0] != 0x00 || q4[1] != 0x40 || q4[2] != 0x80 || q4[17] != 0xf8 {
		t.Errorf("Q4_0 bytes % x", q4)
	}
	q8, err := QuantizeQ8_0(x)
	if err != nil {
		t.Fatal(err)
	}
	// id = 127/16; q[0] = -127, q[16] = 0, q[31] = round(119.0625) = 119.
	if int8(q8[2]) != -127 || q8[2+16] != 0 || int8(q8[2+31]) != 119 {
		t.Errorf("Q8_0 bytes % x", q8)
	}
	if _, err := QuantizeQ8_0(make([]float32, 31)); err == nil {
		t.Error("QuantizeQ8_0 of 31 values: no error")
	}
	if _, err := QuantizeQ4_0(make([]float32, 33)); err == nil {
		t.Error("QuantizeQ4_0 of 33 values: no error")
	}
}

func TestEncodeDequantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 32*64)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * 0.05
	}
	for i := 0; i < 32; i++ {
		x[i] = 0 // an all-zero block must decode to zeros
	}
	cases := []struct {
		typ Type
		// tol returns the allowed error for an element given its block's
		// largest magnitude.
		tol func(x, amax float32) float32
	}{
		{TypeF32, func(_, _ float32) float32 { return 0 }},
		{TypeF16, func(x, _ float32) float32 { return abs32(x)*0x1p-11 + 0x1p-25 }},
		{TypeQ8_0, func(_, a float32) float32 { return a/127*0.5 + a*0x1p-10 }},
		{TypeQ4_0, func(_, a float32) float32 { return a/8 + a*0x1p-10 }}, // +amax clips to 7d
	}
	for _, c := range cases {
		enc, err := Encode(c.typ, x)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(enc)) != c.typ.RowSize(int64(len(x))) {
			t.Errorf("%s: %d bytes", c.typ, len(enc))
		}
		dec, err := Dequantize(c.typ, enc, len(x))
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < len(x)/32; b++ {
			var amax float32
			for _, v := range x[b*32 : (b+1)*32] {
				amax = max(amax, abs32(v))
			}
			for i := b * 32; i < (b+1)*32; i++ {
				if d := abs32(dec[i] - x[i]); d > c.tol(x[i], amax) {
					t.Fatalf("%s: element %d: got %g want %g (diff %g > %g)", c.typ, i, dec[i], x[i], d, c.tol(x[i], amax))
				}
			}
		}
	}
	if _, err := Dequantize(TypeQ8_0, make([]byte, 33), 32); err == nil {
		t.Error("Dequantize with wrong length: no error")
	}
	if _, err := Dequantize(TypeQ4_K, make([]byte, 144), 256); err == nil {
		t.Error("Dequantize Q4_K: no error")
	}
	if _, err := Encode(TypeQ5_0, x); err == nil {
		t.Error("Encode Q5_0: no error")
	}
}
