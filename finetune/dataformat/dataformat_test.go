package dataformat

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fireact/fireact/store"
	"github.com/fireact/fireact/store/trajectory"
)

const sft = "../../../shared/data/fireact/finetune"

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestImportReleasedCounts imports all eight FireAct files and checks the
// per-file counts and the task/method composition.
func TestImportReleasedCounts(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	type want struct {
		n      int
		tasks  map[string]int
		method map[string]int // nil: not checked
	}
	hot500 := map[string]int{TaskHotpotQA: 500}
	multi := map[string]int{TaskHotpotQA: 500, TaskMMLU: 456, TaskStrategyQA: 388}
	mm := map[string]int{TaskHotpotQA: 734, TaskMMLU: 712, TaskStrategyQA: 617}
	cases := map[string]want{
		"alpaca_format/hotpotqa.json":              {500, hot500, map[string]int{"react": 500}},
		"alpaca_format/hotpotqa_multimethod.json":  {734, map[string]int{TaskHotpotQA: 734}, map[string]int{"react": 500, "cot": 187, "reflexion": 47}},
		"alpaca_format/multitask.json":             {1344, multi, map[string]int{"react": 1344}},
		"alpaca_format/multitask_multimethod.json": {2063, mm, map[string]int{"react": 1344, "cot": 648, "reflexion": 71}},
		"gpt_format/hotpotqa.jsonl":                {500, hot500, nil},
		"gpt_format/hotpotqa_multimethod.jsonl":    {733, map[string]int{TaskHotpotQA: 733}, nil},
		"gpt_format/multitask.jsonl":               {1344, multi, nil},
		"gpt_format/multitask_multimethod.jsonl":   {2063, mm, nil},
	}
	for file, w := range cases {
		rep, err := ImportFile(ctx, s, filepath.Join(sft, file), ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Log(rep)
		if rep.Imported != w.n || len(rep.Errors) != 0 {
			t.Errorf("%s: imported %d (errors %v), want %d", file, rep.Imported, rep.Errors, w.n)
		}
		if !reflect.DeepEqual(rep.ByTask, w.tasks) {
			t.Errorf("%s: tasks %v, want %v", file, rep.ByTask, w.tasks)
		}
		if w.method != nil && !reflect.DeepEqual(rep.ByMethod, w.method) {
			t.Errorf("%s: methods %v, want %v", file, rep.ByMethod, w.method)
		}
		d, err := s.Dataset(ctx, rep.DatasetID)
		if err != nil || d.Size != w.n {
			t.Errorf("%s: dataset %+v, %v", file, d, err)
		}
	}
	// Every step was parsed: the mean number of steps is plausible and every
	// episode ends in a finish action with a reward observation.
	var bad int
	s.DB().QueryRowContext(ctx, `SELECT count(*) FROM episodes e WHERE NOT EXISTS (
		SELECT 1 FROM steps st WHERE st.episode_id = e.id AND lower(st.action) = 'finish')`).Scan(&bad)
	if bad != 0 {
		t.Errorf("%d episodes without a finish step", bad)
	}
}

// TestRoundTripReleased imports each file, exports it in its own format,
// re-imports the export and checks the trajectories are identical; the export
// equals the source file row for row (alpaca: except that MMLU options move
// from the output to the instruction).
func TestRoundTripReleased(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	files := []string{"alpaca_format/multitask_multimethod.json", "alpaca_format/hotpotqa_multimethod.json",
		"gpt_format/multitask_multimethod.jsonl", "gpt_format/hotpotqa_multimethod.jsonl"}
	for _, file := range files {
		src := filepath.Join(sft, file)
		f, _ := DetectFormat(src)
		rep1, err := ImportFile(ctx, s, src, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "export"+filepath.Ext(src))
		fh, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Export(ctx, s, rep1.DatasetID, f, fh)
		fh.Close()
		if err != nil || n != rep1.Imported {
			t.Fatalf("%s: export %d, %v", file, n, err)
		}
		rep2, err := ImportFile(ctx, s, out, ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := DatasetTrajectories(ctx, s, rep1.DatasetID)
		b, _ := DatasetTrajectories(ctx, s, rep2.DatasetID)
		if len(a) != len(b) || len(a) != rep1.Imported {
			t.Fatalf("%s: %d vs %d trajectories", file, len(a), len(b))
		}
		for i := range a {
			if !reflect.DeepEqual(a[i], b[i]) {
				t.Fatalf("%s row %d differs after round trip:\n%+v\n%+v", file, i, a[i], b[i])
			}
		}
		compareWithSource(t, src, out, f)
	}
}

func compareWithSource(t *testing.T, src, out string, f Format) {
	t.Helper()
	if f == Alpaca {
		var orig, exp []AlpacaRow
		readJSONFile(t, src, &orig)
		readJSONFile(t, out, &exp)
		if len(orig) != len(exp) {
			t.Fatalf("alpaca: %d rows exported of %d", len(exp), len(orig))
		}
		moved := 0
		for i := range orig {
			if orig[i] == exp[i] {
				continue
			}
			// The quirk fix: options leave the output for the instruction.
			o := orig[i]
			j := strings.Index(o.Output, "Thought:")
			opts := strings.TrimSuffix(o.Output[:max(j, 0)], "\n")
			if j <= 0 || exp[i].Instruction != o.Instruction+"\n"+opts || exp[i].Output != o.Output[j:] {
				t.Fatalf("alpaca row %d:\n got %+v\nwant %+v", i, exp[i], o)
			}
			moved++
		}
		t.Logf("%s: %d rows identical, %d MMLU rows with options moved into the instruction", src, len(orig)-moved, moved)
		return
	}
	origLines := readLines(t, src)
	expLines := readLines(t, out)
	if len(origLines) != len(expLines) {
		t.Fatalf("gpt: %d rows exported of %d", len(expLines), len(origLines))
	}
	for i := range origLines {
		var o, e any
		json.Unmarshal([]byte(origLines[i]), &o)
		json.Unmarshal([]byte(expLines[i]), &e)
		if !reflect.DeepEqual(o, e) {
			t.Fatalf("gpt line %d differs:\n got %s\nwant %s", i+1, expLines[i], origLines[i])
		}
	}
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// TestShareGPTExport checks the ShareGPT form and its round trip.
func TestShareGPTExport(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	rep, err := ImportFile(ctx, s, filepath.Join(sft, "gpt_format/hotpotqa.jsonl"), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "train.sharegpt.jsonl")
	fh, _ := os.Create(out)
	if _, err := Export(ctx, s, rep.DatasetID, ShareGPT, fh); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	lines := readLines(t, out)
	var row struct{ Conversations []ShareGPTTurn }
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil {
		t.Fatal(err)
	}
	c := row.Conversations
	if len(c) < 3 || c[0].From != "human" || c[1].From != "gpt" || !strings.HasPrefix(c[1].Value, "Thought: ") ||
		c[2].From != "human" || !strings.HasPrefix(c[2].Value, "Observation: ") {
		t.Errorf("sharegpt row 0 = %+v", c)
	}
	rep2, err := ImportFile(ctx, s, out, ImportOptions{})
	if err != nil || rep2.Imported != 500 || rep2.Format != ShareGPT {
		t.Fatalf("re-import: %v, %v", rep2, err)
	}
	a, _ := DatasetTrajectories(ctx, s, rep.DatasetID)
	b, _ := DatasetTrajectories(ctx, s, rep2.DatasetID)
	if !reflect.DeepEqual(a, b) {
		t.Error("sharegpt round trip changed trajectories")
	}
}

// TestMalformedRows imports corrupted copies: bad rows are reported with
// file:line and reason, good rows import, and a failed import leaves nothing.
func TestMalformedRows(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	dir := t.TempDir()

	src := readLines(t, filepath.Join(sft, "gpt_format/hotpotqa.jsonl"))[:12]
	src[2] = `{"messages": [{"role": "user", "content": "broken"`
	src[5] = `{"rows": []}`
	src[7] = `{"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "I don't know"}]}`
	src[9] = `{"messages": [{"role": "wizard", "content": "q?"}, {"role": "assistant", "content": "Action: finish[x]"}]}`
	gpt := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(gpt, []byte(strings.Join(src, "\n")+"\n\n"), 0o644)
	rep, err := ImportFile(ctx, s, gpt, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 8 {
		t.Errorf("imported %d good rows, want 8", rep.Imported)
	}
	wantErr := []string{
		gpt + ":3: invalid JSON",
		gpt + `:6: no "messages" list`,
		gpt + ":8: no Thought/Action/Observation step",
		gpt + `:10: message 0: role "wizard" not supported`,
	}
	if len(rep.Errors) != len(wantErr) {
		t.Fatalf("errors = %v", rep.Errors)
	}
	for i, w := range wantErr {
		if !strings.HasPrefix(rep.Errors[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, rep.Errors[i].Error(), w)
		}
	}

	alp := filepath.Join(dir, "bad.json")
	os.WriteFile(alp, []byte(`[
  {"instruction": "Q1?", "input": "", "output": "Thought: t\nAction: finish[a]\nObservation: Episode finished, reward = True\n"},
  {"instruction": "", "input": "", "output": "Thought: t\nAction: finish[a]"},
  {"instruction": "Q3?", "input": "", "output": 7},
  {"instruction": "Q4?", "input": "extra", "output": "Action: finish[a]"},
  {"instruction": "Q5?", "input": "", "output": "Action: finish[b]\nObservation: Episode finished, reward = 1"},
  {"instruction": "Q6?", "input": "", "output": "Thought: x" oops},
  {"instruction": "Q7?", "input": "", "output": "Action: finish[c]"}
]`), 0o644)
	rep, err = ImportFile(ctx, s, alp, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 2 {
		t.Errorf("alpaca imported %d, want 2 (rows before the syntax error)", rep.Imported)
	}
	wantErr = []string{
		alp + ":3: element 1: missing or empty instruction",
		alp + ":4: element 2: not an {instruction, input, output} object",
		alp + ":5: element 3: non-empty input",
		alp + ":7: element 5: invalid JSON",
	}
	if len(rep.Errors) != len(wantErr) {
		t.Fatalf("alpaca errors = %v", rep.Errors)
	}
	for i, w := range wantErr {
		if !strings.HasPrefix(rep.Errors[i].Error(), w) {
			t.Errorf("alpaca error %d = %q, want prefix %q", i, rep.Errors[i].Error(), w)
		}
	}

	// A failure while writing (here: a cancelled context) leaves no run,
	// question, episode or dataset behind.
	before := rowCounts(t, s)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ImportFile(cctx, s, filepath.Join(sft, "gpt_format/hotpotqa.jsonl"), ImportOptions{}); err == nil {
		t.Fatal("import with a cancelled context succeeded")
	}
	if after := rowCounts(t, s); after != before {
		t.Errorf("failed import left rows: before %v, after %v", before, after)
	}
}

// TestNothingImported checks that a file with no good row (empty, binary or
// in another format) fails with the bad rows listed and writes nothing: no
// empty run or dataset.
func TestNothingImported(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bin := make([]byte, 4096)
	for i := range bin {
		bin[i] = byte(i * 7919 >> 3)
	}
	gpt := filepath.Join(sft, "gpt_format/hotpotqa.jsonl")
	alpaca := filepath.Join(sft, "alpaca_format/hotpotqa.json")
	for _, tc := range []struct {
		name    string
		path    string
		opt     ImportOptions
		badRows int    // at least this many rows listed
		first   string // prefix of the first bad row
	}{
		{"empty jsonl", write("empty.jsonl", nil), ImportOptions{}, 0, ""},
		{"blank lines", write("blank.jsonl", []byte("\n\n  \n")), ImportOptions{}, 0, ""},
		{"empty json", write("empty.json", nil), ImportOptions{}, 1, filepath.Join(dir, "empty.json") + ":1: not a JSON array"},
		{"binary", write("model.jsonl", bin), ImportOptions{}, 1, filepath.Join(dir, "model.jsonl") + ":1: invalid JSON"},
		{"gpt file as alpaca", gpt, ImportOptions{Format: Alpaca}, 1, gpt + ":1: not a JSON array"},
		{"gpt file as sharegpt", gpt, ImportOptions{Format: ShareGPT}, 100, gpt + `:1: no "conversations" list`},
		{"alpaca file as gpt", alpaca, ImportOptions{Format: GPT}, 1, alpaca + ":1: invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := rowCounts(t, s)
			rep, err := ImportFile(ctx, s, tc.path, tc.opt)
			if !errors.Is(err, ErrNothingImported) {
				t.Errorf("err = %v, want ErrNothingImported", err)
			} else if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file", err)
			}
			if rep.Imported != 0 || rep.RunID != 0 || rep.DatasetID != 0 || len(rep.Errors) < tc.badRows {
				t.Errorf("report = %+v", rep)
			}
			if tc.first != "" && (len(rep.Errors) == 0 || !strings.HasPrefix(rep.Errors[0].Error(), tc.first)) {
				t.Errorf("bad rows %v, want the first with prefix %q", rep.Errors, tc.first)
			}
			if after := rowCounts(t, s); after != before {
				t.Errorf("import of nothing left rows: before %v, after %v", before, after)
			}
		})
	}
}

func rowCounts(t *testing.T, s *store.Store) [5]int {
	var c [5]int
	for i, tbl := range []string{"runs", "questions", "episodes", "steps", "datasets"} {
		if err := s.DB().QueryRow(`SELECT count(*) FROM ` + tbl).Scan(&c[i]); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestMethodOverrideAndMMLUQuirk(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	rep, err := ImportFile(ctx, s, filepath.Join(sft, "alpaca_format/multitask.json"), ImportOptions{Method: "react", Dataset: "mt"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ByMethod["react"] != 1344 || rep.Dataset != "mt" {
		t.Errorf("override: %v", rep)
	}
	ids, _ := s.DatasetEpisodeIDs(ctx, rep.DatasetID)
	tr, err := s.Trajectory(ctx, ids[500]) // the first MMLU row
	if err != nil {
		t.Fatal(err)
	}
	if tr.Task != TaskMMLU || tr.Prefix != "" || !strings.HasPrefix(tr.Question, "Question: ") ||
		!strings.Contains(tr.Question, "\nA. ") || !strings.HasPrefix(trajectory.Render(tr), "Thought: ") {
		t.Errorf("MMLU quirk not fixed: question %q prefix %q", tr.Question, tr.Prefix)
	}
	rep2, _ := ImportFile(ctx, s, filepath.Join(sft, "alpaca_format/multitask.json"), ImportOptions{Dataset: "mt"})
	if rep2.Dataset != "mt#2" {
		t.Errorf("second import dataset name %q, want mt#2", rep2.Dataset)
	}
}
