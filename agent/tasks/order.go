package tasks

import "fmt"

// Question orders.
const (
	// OrderNatural is file order.
	OrderNatural = "natural"
	// OrderFireAct is FireAct's: random.Random(233).shuffle(list(range(n))).
	OrderFireAct = "fireact"
	// OrderRandom is random.Random(seed).shuffle(list(range(n))).
	OrderRandom = "random"
)

// FireActSeed is the seed FireAct shuffles its evaluation questions with.
const FireActSeed = 233

// Order returns the question indices 0..n-1 in the named order. Random orders
// use Python's generator, so "--order random --seed S" matches
// random.Random(S).shuffle in Python too.
func Order(n int, order string, seed int64) ([]int, error) {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	switch order {
	case OrderNatural, "":
	case OrderFireAct:
		NewPyRandom(FireActSeed).Shuffle(idx)
	case OrderRandom:
		NewPyRandom(seed).Shuffle(idx)
	default:
		return nil, fmt.Errorf("tasks: unknown order %q (natural, fireact, random)", order)
	}
	return idx, nil
}

// Select returns the indices of t in the given order, skipping offset and
// keeping at most limit (limit <= 0 keeps all).
func Select(t Task, order string, seed int64, offset, limit int) ([]int, error) {
	idx, err := Order(t.Len(), order, seed)
	if err != nil {
		return nil, err
	}
	if offset > len(idx) {
		offset = len(idx)
	}
	idx = idx[offset:]
	if limit > 0 && limit < len(idx) {
		idx = idx[:limit]
	}
	return idx, nil
}
