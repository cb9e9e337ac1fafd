package results

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/agent/tasks"
	"github.com/fireact/fireact/store"
)

const data = "../../../shared/data/fireact"

// sample writes a small result file in FireAct's trajs/*.json shape for the
// HotpotQA dev questions 0, 1 and 5.
func sample(t *testing.T) string {
	t.Helper()
	res := map[string]any{
		"0": map[string]any{"reward": true, "em": 1, "f1": 1, "gt": "yes", "pred": "Yes",
			"traj": "Question: Were Scott Derrickson and Ed Wood of the same nationality?\nThought 1: I need to search both.\nAction 1: Search[Scott Derrickson]\nObservation 1: Scott Derrickson is an American director.\nThought 2: Ed Wood was American too.\nAction 2: Finish[Yes]\nObservation 2: Episode finished, reward = True\n"},
		"1": map[string]any{"reward": false, "em": 0, "f1": 0.8, "gt": "Chief of Protocol", "pred": "the Chief of Protocol!",
			"traj": "Question: What government position was held by the woman who portrayed Corliss Archer in the film Kiss and Tell?\nThought 1: Shirley Temple.\nAction 1: Finish[the Chief of Protocol!]\nObservation 1: Episode finished, reward = False\n"},
		"5": map[string]any{"reward": false, "em": 0, "f1": 0, "gt": "x", "pred": "",
			"traj": "Question: q\nThought 1: I keep searching.\nAction 1: Search[y]\nObservation 1: nothing\n"},
	}
	b, _ := json.Marshal(res)
	p := filepath.Join(t.TempDir(), "hotpotqa_dev.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportFireActResults(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	task, err := tasks.Open(data, tasks.HotpotQA, "dev")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ImportFile(ctx, s, sample(t), task, Options{Method: "react", Model: "gpt-4"})
	if err != nil {
		t.Fatal(err)
	}
	// Recomputed: "the Chief of Protocol!" normalises to the gold answer, so our
	// EM is 1 where the file says 0.
	if rep.Episodes != 3 || rep.Disagreements != 1 || math.Abs(rep.EM-2.0/3) > 1e-9 || math.Abs(rep.FireActEM-1.0/3) > 1e-9 {
		t.Errorf("report = %+v", rep)
	}
	run, err := s.Run(ctx, rep.RunID)
	if err != nil || run.Kind != store.KindEval || run.Task != "hotpotqa" || run.Split != "dev" || run.Model != "gpt-4" {
		t.Errorf("run = %+v, %v", run, err)
	}
	eps, _ := s.Episodes(ctx, rep.RunID)
	if len(eps) != 3 {
		t.Fatalf("%d episodes", len(eps))
	}
	if eps[0].Turns != 2 || eps[0].Reward != 1 || eps[0].Status != store.EpisodeDone || eps[1].EM != 1 {
		t.Errorf("episodes = %+v", eps[:2])
	}
	if eps[2].Status != store.EpisodeUnfinished {
		t.Errorf("episode without finish has status %q", eps[2].Status)
	}
	q, _ := s.Question(ctx, eps[2].QuestionID)
	if q.Index != 5 || q.Text != task.Question(5).Text {
		t.Errorf("question 5 = %+v (text from the dev file expected)", q)
	}
	tr, _ := s.Trajectory(ctx, eps[0].ID)
	if !tr.Numbered || len(tr.Steps) != 2 || tr.Steps[0].Action != "Search" || !strings.HasPrefix(tr.Prefix, "Question: Were") {
		t.Errorf("trajectory = %+v", tr)
	}
	sum, _ := s.Summary(ctx, rep.RunID)
	if math.Abs(sum.EM-2.0/3) > 1e-9 {
		t.Errorf("summary EM = %v", sum.EM)
	}
}

func TestImportResultsWithoutTask(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := ImportFile(ctx, s, sample(t), nil, Options{}); err == nil {
		t.Error("import without task and split succeeded")
	}
	rep, err := ImportFile(ctx, s, sample(t), nil, Options{Task: "hotpotqa", Split: "dev"})
	if err != nil || rep.Episodes != 3 {
		t.Fatalf("%+v, %v", rep, err)
	}
	eps, _ := s.Episodes(ctx, rep.RunID)
	q, _ := s.Question(ctx, eps[1].QuestionID)
	if q.Gold != "Chief of Protocol" || !strings.HasPrefix(q.Text, "What government position") {
		t.Errorf("question from file = %+v", q)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"x": {}}`), 0o644)
	if _, err := ImportFile(ctx, s, bad, nil, Options{Task: "hotpotqa", Split: "dev"}); err == nil {
		t.Error("non-index key accepted")
	}
}
