package tasks

import "math/bits"

// PyRandom reproduces Python's random.Random (the MT19937 Mersenne Twister)
// for integer seeds, far enough for shuffle: seeding, getrandbits, _randbelow
// and shuffle give the same numbers as CPython 3.x, so FireAct's question
// order (random.Random(233).shuffle) can be rebuilt exactly.
type PyRandom struct {
	mt  [624]uint32
	idx int
}

// NewPyRandom returns a generator seeded like random.Random(seed). Python
// seeds with the absolute value of the integer split into 32-bit words, least
// significant first.
func NewPyRandom(seed int64) *PyRandom {
	n := uint64(seed)
	if seed < 0 {
		n = uint64(-seed)
	}
	return NewPyRandomUint64(n)
}

// NewPyRandomUint64 is NewPyRandom for seeds up to 2^64-1.
func NewPyRandomUint64(seed uint64) *PyRandom {
	key := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		key = append(key, hi)
	}
	r := &PyRandom{}
	r.initByArray(key)
	return r
}

func (r *PyRandom) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < 624; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.idx = 624
}

// initByArray is MT19937's init_by_array, as CPython's random_seed calls it.
func (r *PyRandom) initByArray(key []uint32) {
	r.initGenrand(19650218)
	i, j := 1, 0
	k := 624
	if len(key) > k {
		k = len(key)
	}
	for ; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= 624 {
			r.mt[0] = r.mt[623]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k = 623; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= 624 {
			r.mt[0] = r.mt[623]
			i = 1
		}
	}
	r.mt[0] = 0x80000000
}

// Uint32 is genrand_uint32: the next tempered 32-bit output.
func (r *PyRandom) Uint32() uint32 {
	const upper, lower = 0x80000000, 0x7fffffff
	if r.idx >= 624 {
		mag := [2]uint32{0, 0x9908b0df}
		var kk int
		for kk = 0; kk < 624-397; kk++ {
			y := (r.mt[kk] & upper) | (r.mt[kk+1] & lower)
			r.mt[kk] = r.mt[kk+397] ^ (y >> 1) ^ mag[y&1]
		}
		for ; kk < 623; kk++ {
			y := (r.mt[kk] & upper) | (r.mt[kk+1] & lower)
			r.mt[kk] = r.mt[kk+(397-624)] ^ (y >> 1) ^ mag[y&1]
		}
		y := (r.mt[623] & upper) | (r.mt[0] & lower)
		r.mt[623] = r.mt[396] ^ (y >> 1) ^ mag[y&1]
		r.idx = 0
	}
	y := r.mt[r.idx]
	r.idx++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// GetRandBits is random.getrandbits(k) for 0 < k <= 64: whole 32-bit words
// fill from the least significant end, and the last word keeps its top bits.
func (r *PyRandom) GetRandBits(k int) uint64 {
	if k <= 0 || k > 64 {
		panic("tasks: GetRandBits needs 0 < k <= 64")
	}
	if k <= 32 {
		return uint64(r.Uint32() >> (32 - k))
	}
	lo := uint64(r.Uint32())
	hi := uint64(r.Uint32() >> (64 - k))
	return lo | hi<<32
}

// RandBelow is Python's _randbelow_with_getrandbits(n): draw k = n.bit_length()
// bits until the value is below n.
func (r *PyRandom) RandBelow(n int) int {
	if n <= 0 {
		return 0
	}
	k := bits.Len64(uint64(n))
	v := r.GetRandBits(k)
	for v >= uint64(n) {
		v = r.GetRandBits(k)
	}
	return int(v)
}

// Shuffle is random.shuffle: Fisher–Yates from the end with RandBelow.
func (r *PyRandom) Shuffle(x []int) {
	for i := len(x) - 1; i > 0; i-- {
		j := r.RandBelow(i + 1)
		x[i], x[j] = x[j], x[i]
	}
}
