package store

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRounds records the rounds of two improve jobs in a real database file,
// updates a round phase by phase as improve does, reopens the file and reads
// them back in order; bad rows are refused with the field named.
func TestRounds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fireact.db")
	s := openAt(t, path)
	run, qs := seedRun(t, s, 2)
	ep := Episode{RunID: run.ID, QuestionID: qs[0].ID, Status: EpisodeDone, EM: 1, F1: 1, Reward: 1, Turns: 1}
	if err := s.InsertEpisode(ctx, &ep, testSteps(1)); err != nil {
		t.Fatal(err)
	}
	d := Dataset{Name: "improve/job/r1/train"}
	if _, err := s.CreateDataset(ctx, &d, []int64{ep.ID, ep.ID}); err != nil {
		t.Fatal(err)
	}

	r0 := Round{Job: "job", Round: 0, Phase: PhaseDone, Status: StatusDone, Config: `{"k":4,"api_key":"sk-secret"}`,
		DevRunID: run.ID, DevEM: 0.25, DevF1: 0.5}
	if err := s.SaveRound(ctx, &r0); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r0.Config, "sk-secret") {
		t.Errorf("round config kept a secret: %s", r0.Config)
	}
	// Round 1 is saved as each phase ends, as improve does.
	r1 := Round{Job: "job", Round: 1, Phase: PhaseSample, AdapterIn: "sft.gguf", Questions: 2, K: 4, Samples: 8,
		PromptTokens: 1000, PromptDecoded: 130}
	if err := s.SaveRound(ctx, &r1); err != nil {
		t.Fatal(err)
	}
	created := r1.CreatedAt
	time.Sleep(5 * time.Millisecond)
	r1.Phase, r1.Passed, r1.Kept, r1.Solved, r1.SelfExamples, r1.TeacherExamples, r1.DatasetID = PhaseTrain, 5, 3, 2, 3, 10, d.ID
	r1.CreatedAt = time.Time{} // a resumed process does not know it
	if err := s.SaveRound(ctx, &r1); err != nil {
		t.Fatal(err)
	}
	r1.Phase, r1.Status, r1.Adapter, r1.AdapterHash, r1.DevRunID, r1.DevEM, r1.DevF1 = PhaseDone, StatusDone, "r1.gguf", "abc", run.ID, 0.5, 0.75
	r1.FinishedAt = time.Now().UTC()
	if err := s.SaveRound(ctx, &r1); err != nil {
		t.Fatal(err)
	}
	other := Round{Job: "another", Round: 1, Phase: PhaseEval}
	if err := s.SaveRound(ctx, &other); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openAt(t, path)
	got, err := s.Rounds(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Round != 0 || got[1].Round != 1 {
		t.Fatalf("rounds of job: %+v", got)
	}
	g := got[1]
	if !g.CreatedAt.Equal(created) {
		t.Errorf("round 1 created at %v after updates, want the first save's %v", g.CreatedAt, created)
	}
	if g.FinishedAt.IsZero() || !got[0].FinishedAt.IsZero() {
		t.Errorf("finished at: round 0 %v, round 1 %v", got[0].FinishedAt, g.FinishedAt)
	}
	want := r1
	want.CreatedAt, want.FinishedAt, want.Config = g.CreatedAt, g.FinishedAt, "{}"
	if !reflect.DeepEqual(g, want) {
		t.Errorf("round 1 read back as\n%+v\nwant\n%+v", g, want)
	}
	if got[0].DevEM != 0.25 || got[0].DevRunID != run.ID || got[0].DatasetID != 0 {
		t.Errorf("round 0: %+v", got[0])
	}
	all, err := s.Rounds(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Job != "another" || all[1].Job != "job" {
		t.Errorf("all rounds: %+v", all)
	}
	if none, err := s.Rounds(ctx, "nope"); err != nil || len(none) != 0 {
		t.Errorf("rounds of an unknown job: %v, %v", none, err)
	}

	for _, tc := range []struct {
		r    Round
		want string
	}{
		{Round{Round: 1}, "empty job"},
		{Round{Job: "j", Round: -1}, "negative round"},
		{Round{Job: "j", Round: 1, Phase: "bake"}, `phase "bake"`},
		{Round{Job: "j", Round: 1, Status: "odd"}, "CHECK"},
		{Round{Job: "j", Round: 1, DatasetID: 999}, "FOREIGN KEY"},
		{Round{Job: "j", Round: 1, Config: "{not json"}, "not JSON"},
	} {
		err := s.SaveRound(ctx, &tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SaveRound(%+v) = %v, want an error with %q", tc.r, err, tc.want)
		}
	}
}
