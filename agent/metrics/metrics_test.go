package metrics

import (
	"math"
	"testing"
)

// Expected values computed with FireAct's/HotpotQA's Python normalize_answer
// and f1_score (python3).
func TestEMF1MatchesPython(t *testing.T) {
	tests := []struct {
		pred, gold   string
		normP, normG string
		em, f1       float64
	}{
		{"The Eiffel Tower", "eiffel tower", "eiffel tower", "eiffel tower", 1, 1},
		{"the  Beatles!", "Beatles", "beatles", "beatles", 1, 1},
		{"An apple a day", "apple day", "apple day", "apple day", 1, 1},
		{"yes", "Yes.", "yes", "yes", 1, 1},
		{"no", "yes", "no", "yes", 0, 0},
		{"yes indeed", "yes", "yes indeed", "yes", 0, 0},
		{"noanswer", "noanswer", "noanswer", "noanswer", 1, 1},
		{"Barack Obama", "Obama", "barack obama", "obama", 0, 2.0 / 3},
		{"U.S.A.", "USA", "usa", "usa", 1, 1},
		{"theater", "the ater", "theater", "ater", 0, 0},
		{"Anna and the king", "anna king", "anna and king", "anna king", 0, 0.8},
		{"1,000", "1000", "1000", "1000", 1, 1},
		{"café the", "Café", "café", "café", 1, 1},
		{"éthe x", "x", "éthe x", "x", 0, 2.0 / 3},
		{"the_a", "the a", "thea", "", 0, 0},
		{"New\tYork\u00a0City", "new york city", "new york city", "new york city", 1, 1},
		{"a\x1cb", "a b", "b", "b", 1, 1},
		{"", "", "", "", 1, 0},
		{"", "x", "", "x", 0, 0},
		{"the", "a", "", "", 1, 0},
		{"Chief of Protocol", "chief of protocol of the United States", "chief of protocol", "chief of protocol of united states", 0, 2.0 / 3},
		{"2 2 3", "2 3 3", "2 2 3", "2 3 3", 0, 2.0 / 3},
		{"“quoted”", "quoted", "“quoted”", "quoted", 0, 0},
		{"Ölüdeniz", "ölüdeniz", "ölüdeniz", "ölüdeniz", 1, 1},
		{"ǅemal", "ǆemal", "ǆemal", "ǆemal", 1, 1},
	}
	for _, tc := range tests {
		if got := NormalizeAnswer(tc.pred); got != tc.normP {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", tc.pred, got, tc.normP)
		}
		if got := NormalizeAnswer(tc.gold); got != tc.normG {
			t.Errorf("NormalizeAnswer(%q) = %q, want %q", tc.gold, got, tc.normG)
		}
		s := QA(tc.pred, tc.gold)
		if s.EM != tc.em || math.Abs(s.F1-tc.f1) > 1e-12 {
			t.Errorf("QA(%q, %q) = %+v, want EM %v F1 %v", tc.pred, tc.gold, s, tc.em, tc.f1)
		}
	}
}

func TestF1PrecisionRecall(t *testing.T) {
	f1, p, r := F1("barack hussein obama president", "president obama")
	if p != 0.5 || r != 1 || math.Abs(f1-2.0/3) > 1e-12 {
		t.Errorf("F1 = %v, P = %v, R = %v", f1, p, r)
	}
}

func TestChoiceLetter(t *testing.T) {
	tests := []struct{ pred, want string }{
		{"B", "B"},
		{" c ", "C"},
		{"(D)", "D"},
		{"A.", "A"},
		{"B) sheep herds", "B"},
		{"C: bunny rolls", "C"},
		{"(A) rock fights", "A"},
		{"The answer is C.", "C"},
		{"answer: (b)", "B"},
		{"So the answer is option D", "D"},
		{"I think option B is right", "B"},
		{"D speaking deer", ""}, // no separator: ambiguous with the article case
		{"None", ""},
		{"A cat sat", ""}, // an article, not an option
		{"", ""},
	}
	for _, tc := range tests {
		if got := ChoiceLetter(tc.pred); got != tc.want {
			t.Errorf("ChoiceLetter(%q) = %q, want %q", tc.pred, got, tc.want)
		}
	}
	if s := Choice("(B)", "B"); s.EM != 1 || s.F1 != 1 {
		t.Errorf("Choice match = %+v", s)
	}
	if s := Choice("A", "B"); s.EM != 0 {
		t.Errorf("Choice mismatch = %+v", s)
	}
	if s := Choice("", ""); s.EM != 0 {
		t.Errorf("empty prediction matched empty gold: %+v", s)
	}
}

func TestYesNo(t *testing.T) {
	tests := []struct{ pred, want string }{
		{"yes", "yes"},
		{"No.", "no"},
		{"Yes, but check for gluten-free labeling.", "yes"},
		{"No, they do not perform the same genre of music.", "no"},
		{"True", "yes"},
		{"false", "no"},
		{"So the answer is no.", "no"},
		{"Thought: ... Answer: yes.", "yes"},
		{"It is not true", ""},
		{"Maybe", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := YesNo(tc.pred); got != tc.want {
			t.Errorf("YesNo(%q) = %q, want %q", tc.pred, got, tc.want)
		}
	}
	if s := YesNoMatch("No, never.", "false"); s.EM != 1 {
		t.Errorf("YesNoMatch(no, false) = %+v", s)
	}
	if s := YesNoMatch("yes", "no"); s.EM != 0 {
		t.Errorf("YesNoMatch(yes, no) = %+v", s)
	}
	if s := YesNoMatch("maybe", "maybe"); s.EM != 0 {
		t.Errorf("non yes/no matched: %+v", s)
	}
}
