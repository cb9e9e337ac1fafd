package improve

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

// sampleEp is one sampled episode of a selection fixture.
type sampleEp struct {
	q      int // question index
	k      int // sample run
	status store.EpisodeStatus
	em, f1 float64
	answer string // the finish argument: the trajectory's identity
}

// TestSelectMix checks the selection of a round in a real store: samples
// pass by EM 1 (or F1 at least MinF1) and only when finished, a trajectory
// sampled twice for one question is kept once, the kept samples and the
// teacher's episodes enter the training set by the mix ratios (repeated above
// 1, sampled without repeats below), the set is recorded as a dataset with its
// recipe, and a resumed round finds the same set.
func TestSelectMix(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	qs := make([]store.Question, 4)
	for i := range qs {
		qs[i] = store.Question{Task: "world", Split: "train", Index: i, Text: fmt.Sprintf("question %d?", i), Gold: "x"}
	}
	if err := st.UpsertQuestions(ctx, qs); err != nil {
		t.Fatal(err)
	}
	insert := func(runName string, q int, status store.EpisodeStatus, em, f1 float64, answer string) int64 {
		t.Helper()
		run, err := st.RunByName(ctx, runName)
		if err != nil {
			run = store.Run{Name: runName, Kind: store.KindGenerate, Task: "world", Split: "train", Method: "react", Config: "{}"}
			if _, err := st.CreateRun(ctx, &run); err != nil {
				t.Fatal(err)
			}
		}
		tr := trajectory.Parse("Thought: I search.\nAction: search[q]\nObservation: o.\nThought: done.\nAction: finish[" + answer + "]\nObservation: Episode finished\n")
		tr.Question, tr.Method = qs[q].Text, "react"
		ep := store.Episode{RunID: run.ID, QuestionID: qs[q].ID}
		store.EpisodeFromTrajectory(&ep, tr)
		ep.Status, ep.EM, ep.F1, ep.Reward = status, em, f1, em
		if status == store.EpisodeError {
			ep.Error = "llm failed"
		}
		if err := st.InsertEpisode(ctx, &ep, store.StepsFromTrajectory(tr)); err != nil {
			t.Fatal(err)
		}
		return ep.ID
	}
	var teacher []int64
	for i := 0; i < 4; i++ {
		teacher = append(teacher, insert("teacher", i, store.EpisodeDone, 1, 1, fmt.Sprintf("teacher %d", i)))
	}
	samples := []sampleEp{
		{q: 0, k: 0, status: store.EpisodeDone, em: 1, f1: 1, answer: "A"},
		{q: 0, k: 1, status: store.EpisodeDone, em: 1, f1: 1, answer: "A"}, // the same trajectory again
		{q: 1, k: 0, status: store.EpisodeDone, em: 1, f1: 1, answer: "B"},
		{q: 1, k: 1, status: store.EpisodeDone, em: 1, f1: 1, answer: "C"},
		{q: 2, k: 0, status: store.EpisodeDone, em: 0, f1: 0.6, answer: "D"},
		{q: 2, k: 1, status: store.EpisodeUnfinished, em: 0, f1: 0.9, answer: "E"},
	}
	newJob := func(name string, minF1 float64, mix map[string]float64) (*job, map[string]int64) {
		ids := map[string]int64{}
		for _, s := range samples {
			ids[fmt.Sprintf("%d/%d", s.q, s.k)] = insert(fmt.Sprintf("%s/r1/sample-%d", name, s.k), s.q, s.status, s.em, s.f1, s.answer)
		}
		return &job{cfg: Config{Name: name, K: 2, MinF1: minF1, Mix: mix, Seed: 1}, s: st, teacher: teacher}, ids
	}

	for _, tc := range []struct {
		name                                 string
		minF1                                float64
		mix                                  map[string]float64
		passed, kept, solved, self, nTeacher int
		selfIDs                              []string // the kept samples in the set, in order
	}{
		{"em", 0, map[string]float64{MixTeacher: 1, MixSelf: 1}, 4, 3, 2, 3, 4, []string{"0/0", "1/0", "1/1"}},
		{"f1", 0.5, map[string]float64{MixTeacher: 1, MixSelf: 1}, 5, 4, 3, 4, 4, []string{"0/0", "1/0", "2/0", "1/1"}},
		{"ratios", 0, map[string]float64{MixTeacher: 0.5, MixSelf: 2}, 4, 3, 2, 6, 2, []string{"0/0", "1/0", "1/1", "0/0", "1/0", "1/1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, ids := newJob(tc.name, tc.minF1, tc.mix)
			r := store.Round{Job: tc.name, Round: 1, K: 2}
			if err := j.selectMix(ctx, &r); err != nil {
				t.Fatal(err)
			}
			if r.Samples != 6 || r.Passed != tc.passed || r.Kept != tc.kept || r.Solved != tc.solved ||
				r.SelfExamples != tc.self || r.TeacherExamples != tc.nTeacher {
				t.Errorf("round %+v; want 6 samples, %d passed, %d kept, %d solved, %d self + %d teacher",
					r, tc.passed, tc.kept, tc.solved, tc.self, tc.nTeacher)
			}
			d, err := st.DatasetByName(ctx, tc.name+"/r1/train")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := st.DatasetEpisodeIDs(ctx, d.ID)
			var want []int64
			for _, k := range tc.selfIDs {
				want = append(want, ids[k])
			}
			if !reflect.DeepEqual(got[:len(want)], want) {
				t.Errorf("kept samples in the set: %v, want %v", got[:len(want)], want)
			}
			seen := map[int64]bool{}
			for _, id := range got[len(want):] {
				if seen[id] || !contains(teacher, id) {
					t.Errorf("teacher part %v: a repeat or not a teacher episode (teacher %v)", got[len(want):], teacher)
				}
				seen[id] = true
			}
			if d.ID != r.DatasetID || !strings.Contains(d.Recipe, `"improve_job":"`+tc.name+`"`) || !strings.Contains(d.Recipe, fmt.Sprintf(`"kept":%d`, tc.kept)) {
				t.Errorf("dataset %+v for round dataset %d", d, r.DatasetID)
			}
			// A resumed round finds the set, with its counts.
			again := store.Round{Job: tc.name, Round: 1, K: 2}
			if err := j.selectMix(ctx, &again); err != nil {
				t.Fatal(err)
			}
			if again.DatasetID != r.DatasetID || again.Kept != r.Kept || again.Passed != r.Passed || again.SelfExamples != r.SelfExamples {
				t.Errorf("resumed selection %+v, first %+v", again, r)
			}
		})
	}
	j, _ := newJob("nothing", 0, map[string]float64{MixSelf: 0})
	r := store.Round{Job: "nothing", Round: 1, K: 2}
	if err := j.selectMix(ctx, &r); err == nil || !strings.Contains(err.Error(), "nothing to train on") {
		t.Errorf("empty mix: %v", err)
	}
}

func contains(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// TestMixSource checks the ratio arithmetic on its own: round(n·ratio)
// episodes, whole repeats first, a remainder without repeats, the same draw
// for the same seed.
func TestMixSource(t *testing.T) {
	ids := []int64{10, 11, 12, 13}
	for _, tc := range []struct {
		ratio float64
		n     int
	}{{0, 0}, {0.5, 2}, {1, 4}, {1.25, 5}, {2.5, 10}} {
		got := mixSource(ids, tc.ratio, 7, MixSelf)
		if len(got) != tc.n {
			t.Errorf("ratio %g: %d episodes, want %d", tc.ratio, len(got), tc.n)
		}
		count := map[int64]int{}
		for _, id := range got {
			count[id]++
		}
		for _, id := range ids {
			if c := count[id]; c < int(tc.ratio) || c > int(tc.ratio)+1 {
				t.Errorf("ratio %g: episode %d taken %d times", tc.ratio, id, c)
			}
		}
		if again := mixSource(ids, tc.ratio, 7, MixSelf); !reflect.DeepEqual(again, got) {
			t.Errorf("ratio %g: %v then %v for one seed", tc.ratio, got, again)
		}
	}
	if mixSource(nil, 2, 1, MixSelf) != nil {
		t.Error("no episodes gave some")
	}
}
