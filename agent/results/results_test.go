package results

import (
	"context"
	"encoding/json"
	"fmt"
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

// The fixtures in testdata are small result files in the layout FireAct's
// generation.py dumps (json.dump(infos, indent=2)): em and reward as booleans,
// gt and pred normalised, and traj as alpaca text with traj_by_line (the
// Llama-2 LoRA students) or as chat messages (the fine-tuned GPT-3.5), named
// <task>_<split>_<start>_<end>_<model>_<temperature>_<time>.json. Each holds
// one question fewer than its range asked: FireAct dumps finished episodes only.
const (
	llamaFile = "testdata/hotpotqa_dev_0_5_llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36.json"
	gptFile   = "testdata/hotpotqa_dev_0_4_ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi_0.0_2023-09-21-16-19-51.json"
)

func TestImportFireActLayouts(t *testing.T) {
	ctx := context.Background()
	task, err := tasks.Open(data, tasks.HotpotQA, "dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file     string
		withTask bool
		asked    int // Options.Asked
		model    string
		// wantAsked questions asked, of which wantEpisodes are in the file;
		// wantEM is FireAct's sum(rs) / len(idxs).
		wantAsked, wantEpisodes int
		wantEM                  float64
		turns3                  int // steps of question 3
	}{
		{llamaFile, true, 0, "llama_models_lora_llama-2-7b-d_1000", 5, 4, 2.0 / 5, 3},
		{gptFile, true, 0, "ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi", 4, 3, 1.0 / 4, 3},
		{llamaFile, false, 0, "llama_models_lora_llama-2-7b-d_1000", 5, 4, 2.0 / 5, 3},
		{gptFile, false, 0, "ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi", 4, 3, 1.0 / 4, 3},
		{gptFile, true, 10, "ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi", 10, 3, 1.0 / 10, 3},
	} {
		name := fmt.Sprintf("%s task=%v asked=%d", filepath.Base(tc.file)[:30], tc.withTask, tc.asked)
		t.Run(name, func(t *testing.T) {
			s, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var tk tasks.Task
			if tc.withTask {
				tk = task
			}
			rep, err := ImportFile(ctx, s, tc.file, tk, Options{Task: "hotpotqa", Split: "dev", Method: "react", Asked: tc.asked})
			if err != nil {
				t.Fatal(err)
			}
			near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
			if rep.Asked != tc.wantAsked || rep.Episodes != tc.wantEpisodes || rep.Answered != tc.wantEpisodes ||
				!near(rep.EM, tc.wantEM) || !near(rep.FireActEM, tc.wantEM) || rep.Disagreements != 0 {
				t.Errorf("report = %+v; want %d asked, %d answered, EM %v", rep, tc.wantAsked, tc.wantEpisodes, tc.wantEM)
			}
			run, err := s.Run(ctx, rep.RunID)
			if err != nil || run.Asked != tc.wantAsked || run.Model != tc.model {
				t.Errorf("run = %+v, %v", run, err)
			}
			sum, err := s.Summary(ctx, rep.RunID)
			if err != nil || !near(sum.EM, tc.wantEM) || sum.Asked != tc.wantAsked || sum.Answered != tc.wantEpisodes {
				t.Errorf("summary = %+v, %v; want EM %v over %d asked", sum, err, tc.wantEM, tc.wantAsked)
			}
			file, err := ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			eps, err := s.Episodes(ctx, rep.RunID)
			if err != nil || len(eps) != len(file) {
				t.Fatalf("%d episodes, %v", len(eps), err)
			}
			for _, ep := range eps {
				q, err := s.Question(ctx, ep.QuestionID)
				if err != nil {
					t.Fatal(err)
				}
				e := file[q.Index]
				if ep.EM != float64(e.EM) || !near(ep.F1, e.F1) || ep.Reward != float64(e.Reward) || ep.Status != store.EpisodeDone {
					t.Errorf("question %d: EM %v F1 %v reward %v status %s; FireAct's em %v f1 %v", q.Index, ep.EM, ep.F1, ep.Reward, ep.Status, e.EM, e.F1)
				}
				if q.Text != task.Question(q.Index).Text {
					t.Errorf("question %d text %q, want the dev question", q.Index, q.Text)
				}
				tr, err := s.Trajectory(ctx, ep.ID)
				if err != nil {
					t.Fatal(err)
				}
				if tr.Prefix != "" || len(tr.Steps) == 0 || !tr.Steps[len(tr.Steps)-1].IsFinish() || tr.Steps[0].Thought == "" {
					t.Errorf("question %d trajectory = %+v (prompt or question left in the body?)", q.Index, tr)
				}
				if q.Index == 3 && (ep.Turns != tc.turns3 || tr.Steps[0].Action != "search") {
					t.Errorf("question 3: %d turns, steps %+v", ep.Turns, tr.Steps)
				}
			}
		})
	}
}

func TestAskedFromFileName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want FileName
		ok   bool
	}{
		{"trajs/hotpotqa_dev_0_500_llama_models_lora_llama-2-13b-d_1000_0.7_2023-09-18-13-40-08.json",
			FileName{"hotpotqa", "dev", 0, 500, "llama_models_lora_llama-2-13b-d_1000", "0.7", "2023-09-18-13-40-08"}, true},
		{"hotpotqa_dev_0_500_ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi_0.0_2023-09-21-16-19-51.json",
			FileName{"hotpotqa", "dev", 0, 500, "ft_gpt-3.5-turbo-0613_princeton-nlp__7woQRsdi", "0.0", "2023-09-21-16-19-51"}, true},
		{"strategyqa_train_100_300_gpt-4_0.0_2023-09-01-10-00-00.json",
			FileName{"strategyqa", "train", 100, 300, "gpt-4", "0.0", "2023-09-01-10-00-00"}, true},
		{"hotpotqa_dev.json", FileName{}, false},
		{"hotpotqa_dev_500_0_gpt-4_0.0_2023-09-01-10-00-00.json", FileName{}, false},
	} {
		got, ok := ParseFileName(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseFileName(%q) = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	// More entries than the name's range asked is a wrong range, not a result.
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := ImportFile(ctx, s, gptFile, nil, Options{Task: "hotpotqa", Split: "dev", Asked: 2}); err == nil || !strings.Contains(err.Error(), "3 entries but 2 questions asked") {
		t.Errorf("3 entries with 2 asked: %v", err)
	}
	neg := filepath.Join(t.TempDir(), "neg.json")
	os.WriteFile(neg, []byte(`{"-1": {"reward": false, "em": false, "f1": 0, "gt": "x", "pred": "", "prompt": "", "traj": ""}}`), 0o644)
	if _, err := ImportFile(ctx, s, neg, nil, Options{Task: "hotpotqa", Split: "dev"}); err == nil || !strings.Contains(err.Error(), "negative question index -1") {
		t.Errorf("negative index without a task: %v", err)
	}
}
