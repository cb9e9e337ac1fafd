package hf

import "math"

// llama3RopeFactors returns the rope_freqs.weight tensor that
// convert_hf_to_gguf.py's LlamaModel writes for rope_scaling
// {"rope_type": "llama3"}: one factor per rotated pair, by which llama.cpp
// divides that pair's frequency (1 for high frequencies, factor for low ones,
// a smooth blend between).
//
// The converter computes it with PyTorch in float32, step by step, and so
// does this function, so that the values are the script's bit for bit:
//
//	freqs   = 1.0 / (base ** (arange(0, dim, 2, float32) / dim))
//	wavelen = 2π / freq                       # torch: freq.reciprocal() * 2π
//	factor  = 1                               if wavelen < old/high
//	        = factor                          if wavelen > old/low
//	        = 1 / ((1 - smooth)/factor + smooth), smooth = (old/wavelen - low) / (high - low)
//
// Python numbers meeting a float32 tensor are rounded to float32 first (torch
// type promotion), "number / tensor" is the tensor's reciprocal times the
// number (Tensor.__rtruediv__), and the wavelength bounds are Python floats
// (float64) rounded to float32 when compared. The one step that cannot be
// reproduced exactly everywhere is PyTorch's vectorized float32 pow (SLEEF,
// within 1 ULP); it is computed here in float64 and rounded once, which is
// the correctly rounded result. Explicit float32 conversions keep Go from
// fusing a multiply and an add into one FMA (the Go spec allows it
// otherwise), which would round differently from PyTorch.
//
// Missing parameters take the script's defaults: factor 8, low_freq_factor
// 1, high_freq_factor 4, original_max_position_embeddings 8192.
func llama3RopeFactors(base float64, dim int, rs *RopeScaling) []float32 {
	get := func(v *float64, def float64) float64 {
		if v == nil {
			return def
		}
		return *v
	}
	factor := get(rs.Factor, 8)
	low := get(rs.LowFreqFactor, 1)
	high := get(rs.HighFreqFactor, 4)
	old := get(rs.OriginalMaxPositions, 8192)
	lowWavelen := float32(old / low)   // Python float division, then float32 for the comparison
	highWavelen := float32(old / high) //
	twoPi := float32(2 * math.Pi)
	out := make([]float32, dim/2)
	for i := range out {
		exp := float32(2*i) / float32(dim)
		p := float32(math.Pow(float64(float32(base)), float64(exp)))
		freq := float32(1) / p
		wavelen := float32(float32(1)/freq) * twoPi
		switch {
		case wavelen < highWavelen:
			out[i] = 1
		case wavelen > lowWavelen:
			out[i] = float32(factor)
		default:
			smooth := (float32(float32(float32(1)/wavelen)*float32(old)) - float32(low)) / float32(high-low)
			out[i] = float32(1) / (float32((float32(1)-smooth)/float32(factor)) + smooth)
		}
	}
	return out
}
