package metrics

import "testing"

// The expected values are Python's: StrategyQATask.evaluate and
// MMLUTask.evaluate of anchen1011/FireAct run on the same strings (python3).
func TestFireActYesNo(t *testing.T) {
	tests := []struct {
		pred    string
		yes, no float64 // EM against gold True and gold False
	}{
		{"yes", 1, 0},
		{"Yes, but check", 1, 0},
		{"YES.", 1, 0},
		{" yes", 0, 0},
		{"No", 0, 1},
		{"no.", 0, 1},
		{"None", 0, 1},
		{"nonsense", 0, 1},
		{"Nope", 0, 1},
		{"The answer is yes", 0, 0},
		{"true", 0, 0},
		{"", 0, 0},
	}
	for _, tc := range tests {
		if got := FireActYesNo(tc.pred, "yes"); got.EM != tc.yes || got.F1 != tc.yes {
			t.Errorf("FireActYesNo(%q, yes) = %+v, want %v", tc.pred, got, tc.yes)
		}
		if got := FireActYesNo(tc.pred, "no"); got.EM != tc.no || got.F1 != tc.no {
			t.Errorf("FireActYesNo(%q, no) = %+v, want %v", tc.pred, got, tc.no)
		}
	}
	// The test split has no answer: nothing scores.
	if got := FireActYesNo("yes", ""); got.EM != 0 {
		t.Errorf("FireActYesNo(yes, \"\") = %+v", got)
	}
}

func TestFireActChoice(t *testing.T) {
	tests := []struct {
		pred, gold string
		em         float64
	}{
		{"B", "B", 1},
		{"b", "B", 1},
		{"b) sheep", "B", 1},
		{"Because", "B", 1},
		{"(B)", "B", 0},
		{"The answer is B.", "B", 0},
		{" B", "B", 0},
		{"B", "A", 0},
		{"", "A", 0},
		{"D. drowns", "D", 1},
		{"d", "D", 1},
		{"anything", "", 0},
	}
	for _, tc := range tests {
		if got := FireActChoice(tc.pred, tc.gold); got.EM != tc.em || got.F1 != tc.em {
			t.Errorf("FireActChoice(%q, %q) = %+v, want %v", tc.pred, tc.gold, got, tc.em)
		}
	}
}
