package tasks

import (
	"reflect"
	"strings"
	"testing"
)

const data = "../../../shared/data/fireact"

func TestLoadHotpotQA(t *testing.T) {
	task, err := Open(data, HotpotQA, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if task.Len() != 7405 || task.Name() != HotpotQA || task.Split() != "dev" {
		t.Fatalf("len %d name %s split %s", task.Len(), task.Name(), task.Split())
	}
	q := task.Question(0)
	if q.Text != "Were Scott Derrickson and Ed Wood of the same nationality?" || q.Gold != "yes" ||
		q.Metadata["type"] != "comparison" || q.Index != 0 {
		t.Errorf("question 0 = %+v", q)
	}
	if s := task.Score("Chief of Protocol of the US", "Chief of Protocol"); s.EM != 0 || s.F1 <= 0.5 {
		t.Errorf("hotpotqa scoring = %+v", s)
	}
}

func TestLoadStrategyQA(t *testing.T) {
	for _, c := range []struct {
		split   string
		n       int
		hasGold bool
	}{{"dev", 229, true}, {"test", 490, false}, {"train_filtered", 2821, true}} {
		task, err := Open(data, StrategyQA, c.split)
		if err != nil {
			t.Fatal(err)
		}
		if task.Len() != c.n {
			t.Errorf("%s: %d questions, want %d", c.split, task.Len(), c.n)
		}
		for i := 0; i < task.Len(); i++ {
			g := task.Question(i).Gold
			if c.hasGold && g != "yes" && g != "no" || !c.hasGold && g != "" {
				t.Fatalf("%s[%d]: gold %q", c.split, i, g)
			}
		}
	}
	task, _ := Open(data, StrategyQA, "dev")
	q := task.Question(0)
	if q.ID != "e0044a7b4d146d611e73" || q.Gold != "no" || q.Metadata["term"] != "Albany, Georgia" {
		t.Errorf("dev[0] = %+v", q)
	}
	if s := task.Score("No, it will not.", q.Gold); s.EM != 1 {
		t.Errorf("strategyqa scoring = %+v", s)
	}
}

func TestLoadBamboogle(t *testing.T) {
	task, err := Open(data, Bamboogle, "test")
	if err != nil {
		t.Fatal(err)
	}
	if task.Len() != 125 {
		t.Errorf("%d questions, want 125", task.Len())
	}
	q := task.Question(0)
	if q.Text != "Who was president of the United States in the year that Citibank was founded?" || q.Gold != "james madison" {
		t.Errorf("question 0 = %+v", q)
	}
	// A bare quote inside an unquoted field, read as Python's csv does.
	if q := task.Question(97); q.Text != `When was the person who delivered the "Quit India" speech born?` || q.Gold != "October 2, 1869" {
		t.Errorf("question 97 = %+v", q)
	}
}

func TestLoadMMLU(t *testing.T) {
	task, err := Open(data, MMLU, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if task.Len() != 57*5 {
		t.Errorf("dev has %d questions, want 285", task.Len())
	}
	q := task.Question(1)
	want := "Question: Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K are subgroups of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\nD. False, True"
	if q.Text != want || q.Gold != "B" || q.ID != "abstract_algebra/1" || q.Metadata["subject"] != "abstract_algebra" {
		t.Errorf("dev[1] = %+v", q)
	}
	if s := task.Score("B", q.Gold); s.EM != 1 {
		t.Errorf("mmlu scoring = %+v", s)
	}
	for i := 0; i < task.Len(); i++ {
		if !strings.Contains(task.Question(i).Text, "\nD. ") {
			t.Fatalf("dev[%d] lacks options", i)
		}
	}
	test, err := Open(data, MMLU, "test")
	if err != nil {
		t.Fatal(err)
	}
	if test.Len() < 10000 {
		t.Errorf("test has %d questions", test.Len())
	}
}

// TestScoring checks both scorings on the real data: FireAct's (the default)
// words MMLU questions as its MMLUTask does ("Question: {}\nA. {}\nB. {}\nC. {}\nD. {}")
// and reads only the start of an answer; lenient keeps the bare stem and reads
// "the answer is B" or "true".
func TestScoring(t *testing.T) {
	const stem = "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K are subgroups of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\nD. False, True"
	tests := []struct {
		sc        Scoring
		mmluText  string
		mmlu, sqa map[string]float64 // prediction -> EM (MMLU gold B, StrategyQA gold no)
	}{
		{ScoringFireAct, "Question: " + stem,
			map[string]float64{"B": 1, "b) False, False": 1, "Because": 1, "The answer is B.": 0, "(B)": 0},
			map[string]float64{"No, it will not.": 1, "none": 1, "false": 0, "So the answer is no.": 0, " no": 0}},
		{ScoringLenient, stem,
			map[string]float64{"B": 1, "b) False, False": 0, "Because": 0, "The answer is B.": 1, "(B)": 1},
			map[string]float64{"No, it will not.": 1, "none": 0, "false": 1, "So the answer is no.": 1, " no": 1}},
	}
	for _, tc := range tests {
		mmlu, err := OpenScoring(data, MMLU, "dev", tc.sc)
		if err != nil {
			t.Fatal(err)
		}
		q := mmlu.Question(1)
		if q.Text != tc.mmluText || q.Gold != "B" {
			t.Errorf("%s: mmlu dev[1] = %q (gold %q), want %q", tc.sc, q.Text, q.Gold, tc.mmluText)
		}
		for pred, em := range tc.mmlu {
			if s := mmlu.Score(pred, q.Gold); s.EM != em {
				t.Errorf("%s: mmlu Score(%q, B) = %+v, want EM %v", tc.sc, pred, s, em)
			}
		}
		sqa, err := OpenScoring(data, StrategyQA, "dev", tc.sc)
		if err != nil {
			t.Fatal(err)
		}
		if g := sqa.Question(0).Gold; g != "no" {
			t.Fatalf("strategyqa dev[0] gold %q", g)
		}
		for pred, em := range tc.sqa {
			if s := sqa.Score(pred, "no"); s.EM != em {
				t.Errorf("%s: strategyqa Score(%q, no) = %+v, want EM %v", tc.sc, pred, s, em)
			}
		}
	}
	if _, err := ParseScoring("strict"); err == nil {
		t.Error("unknown scoring accepted")
	}
	if sc, err := ParseScoring(""); err != nil || sc != ScoringFireAct {
		t.Errorf("ParseScoring(\"\") = %q, %v; want fireact", sc, err)
	}
}

func TestOpenUnknown(t *testing.T) {
	if _, err := Open(data, "nope", "dev"); err == nil {
		t.Error("unknown task opened")
	}
	if _, err := Open(data, HotpotQA, "missing"); err == nil {
		t.Error("missing split opened")
	}
}

func TestSelect(t *testing.T) {
	task, err := Open(data, HotpotQA, "dev")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := Select(task, OrderFireAct, 0, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	v := loadVectors(t)
	var want []int
	for _, c := range v.Shuffles {
		if c.Seed == "233" && c.N == 7405 {
			want = c.First
		}
	}
	if len(want) != 500 || !reflect.DeepEqual(idx, want) {
		t.Errorf("first 500 FireAct indices differ from python's")
	}
	nat, _ := Select(task, OrderNatural, 0, 10, 3)
	if !reflect.DeepEqual(nat, []int{10, 11, 12}) {
		t.Errorf("natural offset 10 limit 3 = %v", nat)
	}
	r1, _ := Select(task, OrderRandom, 42, 0, 50)
	for _, c := range v.Shuffles {
		if c.Seed == "42" && c.N == 7405 && !reflect.DeepEqual(r1, c.First) {
			t.Errorf("random seed 42 differs from python")
		}
	}
	if _, err := Select(task, "sideways", 0, 0, 0); err == nil {
		t.Error("unknown order accepted")
	}
}

func TestDataDir(t *testing.T) {
	t.Setenv(EnvDataDir, "/x")
	if DataDir("/flag") != "/flag" || DataDir("") != "/x" {
		t.Error("flag or env not honoured")
	}
}
