package tasks

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"testing"
)

// testdata/python_random.json was generated with the machine's python3
// (see its "generator" field).
type pyVectors struct {
	Shuffles []struct {
		Seed  string
		N     int
		First []int
	}
	Bits []struct {
		Seed          string
		GetRandBits32 []uint64 `json:"getrandbits32"`
		GetRandBits13 []uint64 `json:"getrandbits13"`
		GetRandBits64 []string `json:"getrandbits64"`
	}
}

func loadVectors(t *testing.T) pyVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/python_random.json")
	if err != nil {
		t.Fatal(err)
	}
	var v pyVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func seedOf(t *testing.T, s string) *PyRandom {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return NewPyRandomUint64(n)
}

func TestPyRandomBitsMatchPython(t *testing.T) {
	v := loadVectors(t)
	if len(v.Bits) == 0 {
		t.Fatal("no vectors")
	}
	for _, c := range v.Bits {
		r := seedOf(t, c.Seed)
		for i, want := range c.GetRandBits32 {
			if got := r.GetRandBits(32); got != want {
				t.Errorf("seed %s getrandbits(32) #%d = %d, want %d", c.Seed, i, got, want)
			}
		}
		for i, want := range c.GetRandBits13 {
			if got := r.GetRandBits(13); got != want {
				t.Errorf("seed %s getrandbits(13) #%d = %d, want %d", c.Seed, i, got, want)
			}
		}
		for i, ws := range c.GetRandBits64 {
			want, _ := strconv.ParseUint(ws, 10, 64)
			if got := r.GetRandBits(64); got != want {
				t.Errorf("seed %s getrandbits(64) #%d = %d, want %d", c.Seed, i, got, want)
			}
		}
	}
}

func TestPyShuffleMatchesPython(t *testing.T) {
	v := loadVectors(t)
	if len(v.Shuffles) < 40 {
		t.Fatalf("only %d shuffle vectors", len(v.Shuffles))
	}
	for _, c := range v.Shuffles {
		x := make([]int, c.N)
		for i := range x {
			x[i] = i
		}
		seedOf(t, c.Seed).Shuffle(x)
		if got := x[:len(c.First)]; !reflect.DeepEqual(got, c.First) {
			t.Errorf("seed %s n %d: first %d = %v, want %v", c.Seed, c.N, len(c.First), got[:10], c.First[:min(10, len(c.First))])
		}
	}
}

func TestFireActOrderFirstIndices(t *testing.T) {
	// FireAct's HotpotQA dev subset starts with these (python3:
	// random.Random(233).shuffle(list(range(7405)))).
	got, err := Order(7405, OrderFireAct, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{3687, 6238, 5388, 3522, 3824, 2866, 1551, 2544, 1557, 5762}
	if !reflect.DeepEqual(got[:10], want) {
		t.Errorf("fireact order starts %v, want %v", got[:10], want)
	}
}
