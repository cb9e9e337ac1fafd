package finetune

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"testing"

	"github.com/fireact/fireact/store/trajectory"
)

func TestSplitValidation(t *testing.T) {
	tr, va := SplitValidation(100, 0.05, 7)
	if len(va) != 5 || len(tr) != 95 {
		t.Fatalf("5%% of 100: %d val, %d train", len(va), len(tr))
	}
	all := append(slices.Clone(tr), va...)
	slices.Sort(all)
	for i, x := range all {
		if x != i {
			t.Fatalf("split is not a partition: %v", all)
		}
	}
	tr2, va2 := SplitValidation(100, 0.05, 7)
	if !slices.Equal(va, va2) || !slices.Equal(tr, tr2) {
		t.Fatal("same seed, different split")
	}
	if _, va3 := SplitValidation(100, 0.05, 8); slices.Equal(va, va3) {
		t.Fatal("another seed gave the same split")
	}
	if _, va := SplitValidation(100, 3, 1); len(va) != 3 {
		t.Fatalf("count 3: %d", len(va))
	}
	if tr, va := SplitValidation(1, 0.5, 1); len(tr) != 1 || len(va) != 0 {
		t.Fatal("a single example went to validation")
	}
	if _, va := SplitValidation(10, 0, 1); len(va) != 0 {
		t.Fatal("val 0 gave a validation set")
	}
}

func TestEpochOrderDeterministic(t *testing.T) {
	train := []int{0, 2, 3, 5, 8, 9, 11, 12}
	a, b := EpochOrder(train, 3, 0), EpochOrder(train, 3, 0)
	if !slices.Equal(a, b) {
		t.Fatal("same seed and epoch, different order")
	}
	if slices.Equal(a, EpochOrder(train, 3, 1)) {
		t.Fatal("epochs 0 and 1 have the same order")
	}
	s := slices.Clone(a)
	slices.Sort(s)
	if !slices.Equal(s, train) {
		t.Fatalf("order %v is not a permutation of %v", a, train)
	}
}

func TestPackRespectsMaxTokens(t *testing.T) {
	lengths := []int{100, 300, 250, 50, 400, 512, 10, 10, 200}
	order := []int{8, 0, 1, 2, 3, 4, 5, 6, 7}
	batches := Pack(lengths, order, 512)
	var flat []int
	for _, b := range batches {
		n := 0
		for _, i := range b {
			n += lengths[i]
		}
		if n > 512 {
			t.Fatalf("batch %v has %d tokens > 512", b, n)
		}
		flat = append(flat, b...)
	}
	if !slices.Equal(flat, order) {
		t.Fatalf("packing changed the order: %v", flat)
	}
	if len(batches) >= len(order) {
		t.Fatalf("nothing was packed together: %v", batches)
	}
	exs := []Example{{Tokens: make([]llamaToken, 3), Target: []bool{false, true, true}}, {Tokens: make([]llamaToken, 2), Target: []bool{false, true}}}
	b := Batch(exs, []int{0, 1})
	if !slices.Equal(b.SeqStart, []int{0, 3}) || len(b.Tokens) != 5 || b.Target[3] {
		t.Fatalf("batch %+v", b)
	}
}

func TestLRSchedule(t *testing.T) {
	const base = 1e-3
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	// Warm-up of 4 steps: 1/4, 2/4, 3/4, 4/4 of base.
	for i, want := range []float64{0.25, 0.5, 0.75, 1} {
		if got := LR(ScheduleCosine, base, i, 104, 4); !near(got, want*base) {
			t.Errorf("warm-up step %d: %g, want %g", i, got, want*base)
		}
	}
	// After warm-up: 100 steps of decay.
	if got := LR(ScheduleLinear, base, 4+50, 104, 4); !near(got, base/2) {
		t.Errorf("linear halfway: %g", got)
	}
	if got := LR(ScheduleCosine, base, 4+50, 104, 4); !near(got, base/2) {
		t.Errorf("cosine halfway: %g", got)
	}
	if got := LR(ScheduleCosine, base, 4+25, 104, 4); !near(got, base*0.5*(1+math.Cos(math.Pi/4))) {
		t.Errorf("cosine quarter: %g", got)
	}
	if got := LR(ScheduleLinear, base, 103, 104, 4); !near(got, base/100) || got <= 0 {
		t.Errorf("linear last step: %g", got)
	}
	if got := LR(ScheduleConstant, base, 90, 104, 4); got != base {
		t.Errorf("constant: %g", got)
	}
	if WarmupSteps(0.03, 100) != 3 || WarmupSteps(10, 100) != 10 || WarmupSteps(0, 100) != 0 || WarmupSteps(500, 100) != 500 {
		t.Error("WarmupSteps")
	}
	// FireAct's 100 warm-up steps in a 40-step run: the rate climbs to 40/100 of
	// the peak and no further (transformers' warmup_steps is not cut to the run).
	if got := LR(ScheduleLinear, base, 39, 40, WarmupSteps(100, 40)); !near(got, 0.4*base) {
		t.Errorf("last step of a run shorter than its warm-up: %g, want %g", got, 0.4*base)
	}
	if _, err := ParseSchedule("exp"); err == nil {
		t.Error("unknown schedule accepted")
	}
}

func TestMixRatios(t *testing.T) {
	s := openStore(t, t.TempDir())
	var ts []trajectory.Trajectory
	add := func(n int, method, task string, reward float64) {
		for i := 0; i < n; i++ {
			tr := sampleTrajectory()
			tr.Question = method + task + itoa(len(ts))
			tr.Method, tr.Task = method, task
			if reward == 0 {
				tr.Steps[len(tr.Steps)-1].Observation = "Episode finished, reward = False"
				tr.Reward = 0
			}
			ts = append(ts, tr)
		}
	}
	add(20, "react", "hotpotqa", 1)
	add(10, "cot", "hotpotqa", 1)
	add(10, "reflexion", "hotpotqa", 1)
	add(6, "react", "strategyqa", 1)
	add(5, "react", "hotpotqa", 0) // failed: filtered by reward
	insertEpisodes(t, s, "gen", ts)
	one := 1.0
	mixm, err := ParseMix("react=1,cot=0.5,reflexion=1.5")
	if err != nil {
		t.Fatal(err)
	}
	sel := Selection{Runs: []string{"gen"}, MinReward: &one, Methods: mixm, Tasks: map[string]float64{"hotpotqa": 1, "strategyqa": 0.5}, Seed: 1}
	ctx := context.Background()
	d, ids, rec, err := BuildDataset(ctx, s, sel)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	perID := map[int64]int{}
	for _, id := range ids {
		ep, err := s.Episode(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := s.Question(ctx, ep.QuestionID)
		if ep.Reward < 1 {
			t.Fatalf("episode %d with reward %v chosen", id, ep.Reward)
		}
		count[ep.Method+"/"+q.Task]++
		perID[id]++
	}
	want := map[string]int{"react/hotpotqa": 20, "cot/hotpotqa": 5, "reflexion/hotpotqa": 15, "react/strategyqa": 3}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%s: %d chosen, want %d (all: %v)", k, count[k], n, count)
		}
	}
	twice := 0
	for _, n := range perID {
		if n == 2 {
			twice++
		}
	}
	if twice != 5 {
		t.Errorf("reflexion x1.5: %d episodes repeated, want 5", twice)
	}
	// Recorded with its recipe, and deterministic in the seed.
	got, err := s.DatasetEpisodeIDs(ctx, d.ID)
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("recorded dataset differs: %v", err)
	}
	var r Recipe
	if err := json.Unmarshal([]byte(d.Recipe), &r); err != nil || r.Size != 43 || r.Seed != 1 || r.Methods["cot"] != 0.5 {
		t.Fatalf("recipe %s (%v)", d.Recipe, err)
	}
	if len(rec.Groups) != 4 {
		t.Fatalf("groups %+v", rec.Groups)
	}
	_, ids2, _, _ := BuildDataset(ctx, s, sel)
	if !slices.Equal(ids, ids2) {
		t.Fatal("same seed, different sample")
	}
	sel.Seed = 2
	_, ids3, _, _ := BuildDataset(ctx, s, sel)
	if slices.Equal(ids, ids3) {
		t.Fatal("another seed gave the same sample")
	}
	if _, err := ParseMix("react=x"); err == nil {
		t.Fatal("bad ratio parsed")
	}
}
