package store

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/fireact/fireact/store/trajectory"
)

func TestInsertEpisodeWithSteps(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	r, qs := seedRun(t, s, 3)
	ep := Episode{RunID: r.ID, QuestionID: qs[1].ID, Prediction: "1", EM: 1, F1: 1, Reward: 1, Turns: 2,
		PromptTokens: 100, GeneratedTokens: 20, LatencySeconds: 1.5, Cost: 0.01}
	steps := testSteps(2)
	steps[0].Noise = "shuffle"
	if err := s.InsertEpisode(ctx, &ep, steps); err != nil {
		t.Fatal(err)
	}
	got, err := s.Episode(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != EpisodeDone || got.Prediction != "1" || got.LatencySeconds != 1.5 || got.PromptTokens != 100 {
		t.Errorf("Episode = %+v", got)
	}
	gotSteps, err := s.Steps(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range steps {
		steps[i].N = i
	}
	if !reflect.DeepEqual(gotSteps, steps) {
		t.Errorf("Steps =\n%+v\nwant\n%+v", gotSteps, steps)
	}
	// A second finished episode for the same run and question is refused.
	dup := Episode{RunID: r.ID, QuestionID: qs[1].ID}
	if err := s.InsertEpisode(ctx, &dup, testSteps(1)); !errors.Is(err, ErrEpisodeExists) {
		t.Errorf("duplicate episode: err = %v, want ErrEpisodeExists", err)
	}
}

func TestInsertEpisodeAtomic(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	r, qs := seedRun(t, s, 1)
	// A step that violates a constraint (n is set by position, so use a
	// cancelled context midway instead): a cancelled context must leave nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.InsertEpisode(cctx, &Episode{RunID: r.ID, QuestionID: qs[0].ID}, testSteps(3)); err == nil {
		t.Fatal("insert with cancelled context succeeded")
	}
	var n int
	s.DB().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM episodes) + (SELECT count(*) FROM steps)`).Scan(&n)
	if n != 0 {
		t.Errorf("%d rows left by a failed insert", n)
	}
}

func TestResumeMissingIndicesAndErrorRetry(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	r, qs := seedRun(t, s, 6)
	for _, i := range []int{0, 2} {
		if err := s.InsertEpisode(ctx, &Episode{RunID: r.ID, QuestionID: qs[i].ID}, testSteps(2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.InsertEpisode(ctx, &Episode{RunID: r.ID, QuestionID: qs[3].ID, Status: EpisodeUnfinished}, testSteps(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertEpisode(ctx, &Episode{RunID: r.ID, QuestionID: qs[4].ID, Status: EpisodeError, Error: "timeout"}, testSteps(1)); err != nil {
		t.Fatal(err)
	}
	planned := []int{5, 4, 3, 2, 1, 0}
	missing, err := s.MissingIndices(ctx, r.ID, planned)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{5, 4, 1}; !reflect.DeepEqual(missing, want) {
		t.Errorf("MissingIndices = %v, want %v", missing, want)
	}
	// Retrying the errored question replaces the error episode.
	retry := Episode{RunID: r.ID, QuestionID: qs[4].ID, Prediction: "4"}
	if err := s.InsertEpisode(ctx, &retry, testSteps(3)); err != nil {
		t.Fatalf("retry of error episode: %v", err)
	}
	eps, _ := s.Episodes(ctx, r.ID)
	if len(eps) != 4 {
		t.Errorf("%d episodes after retry, want 4", len(eps))
	}
	var orphan int
	s.DB().QueryRowContext(ctx, `SELECT count(*) FROM steps WHERE episode_id NOT IN (SELECT id FROM episodes)`).Scan(&orphan)
	if orphan != 0 {
		t.Errorf("%d orphan steps after replacing the error episode", orphan)
	}
	missing, _ = s.MissingIndices(ctx, r.ID, planned)
	if want := []int{5, 1}; !reflect.DeepEqual(missing, want) {
		t.Errorf("MissingIndices after retry = %v, want %v", missing, want)
	}
}

func TestTrajectoryThroughStore(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	text := "A. x\nB. y\nThought 1: Now that I haven't solved it, let me reflect. Thought: go\nAction 1: search[q\nObservation 1: o\nline two\nThought 2: t\nAction 2: finish[B]\nObservation 2: Episode finished, reward = 1\n"
	tr := trajectory.Parse(text)
	tr.Method = trajectory.MethodReflexion
	r, _ := seedRun(t, s, 0)
	q := []Question{{Task: "mmlu", Split: "x", Index: 0, Text: "Question: which?"}}
	if err := s.UpsertQuestions(ctx, q); err != nil {
		t.Fatal(err)
	}
	ep := Episode{RunID: r.ID, QuestionID: q[0].ID}
	EpisodeFromTrajectory(&ep, tr)
	if err := s.InsertEpisode(ctx, &ep, StepsFromTrajectory(tr)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Trajectory(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	tr.Question, tr.Task = "Question: which?", "mmlu"
	if !reflect.DeepEqual(got, tr) {
		t.Errorf("trajectory through store\n got %+v\nwant %+v", got, tr)
	}
	if trajectory.Render(got) != text {
		t.Errorf("render after store = %q", trajectory.Render(got))
	}
}
