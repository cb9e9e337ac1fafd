package modelgen

import (
	"hash/fnv"
	"math/rand/v2"
)

// normalGen produces approximately normal samples, bit-for-bit identical on
// every platform. It sums four 24-bit uniform integers (Irwin–Hall, n=4),
// which is exact in integer arithmetic, and scales with one float64
// multiplication; unlike rand.NormFloat64 it needs no math.Log/Exp whose last
// bit may differ between architectures or Go releases. The tails are bounded
// at about ±3.46σ, harmless for weight initialization.
type normalGen struct {
	src *rand.PCG
}

// newNormal seeds a generator from the model seed and a stream name (the
// tensor name), so each tensor's values are independent of the order and
// number of the other tensors.
func newNormal(seed uint64, stream string) *normalGen {
	h := fnv.New64a()
	h.Write([]byte(stream))
	return &normalGen{src: rand.NewPCG(seed, h.Sum64())}
}

const mask24 = 1<<24 - 1

// sqrt3 scales the Irwin–Hall sum (variance 4/12 in units of 2^24) to unit
// variance.
const sqrt3 = 1.7320508075688772

// next returns a sample with mean 0 and standard deviation std.
func (g *normalGen) next(std float64) float32 {
	a, b := g.src.Uint64(), g.src.Uint64()
	s := int64(a&mask24) + int64(a>>24&mask24) + int64(b&mask24) + int64(b>>24&mask24)
	// Centre on the exact mean 4*(2^24-1)/2 and scale to [-2, 2).
	z := float64(2*s-4*mask24) / (2 << 24)
	return float32(z * (sqrt3 * std))
}

// fill fills x with samples of standard deviation std.
func (g *normalGen) fill(x []float32, std float64) {
	for i := range x {
		x[i] = g.next(std)
	}
}
