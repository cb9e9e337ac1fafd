package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fireact/fireact/store"
)

// fixture is a real store with the runs a report compares.
type fixture struct {
	st                          *store.Store
	base, ft, noisy, mixed, trn store.Run
}

// ep describes one episode of the fixture.
type ep struct {
	q          int // question index
	em, f1     float64
	turns      int
	method     string
	status     store.EpisodeStatus
	pred       string
	tokP, tokG int
	sec, cost  float64
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st}

	qs := []store.Question{
		{Task: "hotpotqa", Split: "dev", Index: 0, Text: "Who directed Jaws?", Gold: "Steven Spielberg"},
		{Task: "hotpotqa", Split: "dev", Index: 1, Text: "Which river is <b>longer</b>?", Gold: "Nile"},
		{Task: "hotpotqa", Split: "dev", Index: 2, Text: "Where was Ada born?", Gold: "London"},
		{Task: "strategyqa", Split: "dev", Index: 0, Text: "Can a cat fly?", Gold: "no"},
	}
	if err := st.UpsertQuestions(ctx, qs); err != nil {
		t.Fatal(err)
	}
	mkRun := func(r store.Run, eps []ep) store.Run {
		t.Helper()
		r.Config = "{}"
		if _, err := st.CreateRun(ctx, &r); err != nil {
			t.Fatal(err)
		}
		for _, e := range eps {
			status := e.status
			if status == "" {
				status = store.EpisodeDone
			}
			method := e.method
			if method == "" {
				method = r.Method
			}
			rec := store.Episode{RunID: r.ID, QuestionID: qs[e.q].ID, Status: status, Method: method, Prediction: e.pred,
				EM: e.em, F1: e.f1, Turns: e.turns, PromptTokens: e.tokP, GeneratedTokens: e.tokG, LatencySeconds: e.sec, Cost: e.cost}
			if err := st.InsertEpisode(ctx, &rec, nil); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	f.base = mkRun(store.Run{Name: "llama-react", Kind: store.KindEval, Model: "llama", Method: "react", Task: "hotpotqa", Split: "dev"}, []ep{
		{q: 0, em: 1, f1: 1, turns: 2, pred: "Steven Spielberg", tokP: 100, tokG: 20, sec: 1, cost: 0.01},
		{q: 1, em: 0, f1: 0.5, turns: 4, pred: "Amazon", tokP: 200, tokG: 40, sec: 3, cost: 0.02},
		{q: 2, status: store.EpisodeError, turns: 1, tokP: 50},
	})
	f.ft = mkRun(store.Run{Name: "llama-ft-react", Kind: store.KindEval, Model: "llama", Adapter: "fireact", Method: "react", Task: "hotpotqa", Split: "dev"}, []ep{
		{q: 0, em: 1, f1: 1, turns: 2, pred: "Steven Spielberg", tokP: 80, tokG: 20, sec: 1},
		{q: 1, em: 1, f1: 1, turns: 3, pred: "Nile", tokP: 90, tokG: 30, sec: 1},
		{q: 2, em: 0, f1: 0, turns: 3, status: store.EpisodeUnfinished, pred: "", tokP: 100, tokG: 40, sec: 2},
	})
	// Asked 3 questions, of which the third has no episode.
	f.noisy = mkRun(store.Run{Name: "llama-ft-react-noisy", Kind: store.KindEval, Model: "llama", Adapter: "fireact", Method: "react", Task: "hotpotqa", Split: "dev", Noise: 0.5, Asked: 3}, []ep{
		{q: 0, em: 1, f1: 1, turns: 3, pred: "Steven Spielberg"},
		{q: 1, em: 0, f1: 0, turns: 5, pred: "Amazon"},
	})
	// An unnamed run mixing methods and tasks, for the breakdowns.
	f.mixed = mkRun(store.Run{Kind: store.KindEval, Model: "gpt", Method: "mix", Task: "mixed"}, []ep{
		{q: 0, em: 1, f1: 1, turns: 1, method: "cot"},
		{q: 1, em: 0, f1: 0.2, turns: 2, method: "react"},
		{q: 3, em: 1, f1: 1, turns: 2, method: "react"},
	})
	f.trn = mkRun(store.Run{Name: "train-fireact", Kind: store.KindTrain, Model: "llama"}, nil)
	tr := store.TrainingRun{RunID: f.trn.ID, Hyperparams: "{}"}
	if _, err := st.CreateTrainingRun(ctx, &tr); err != nil {
		t.Fatal(err)
	}
	var pts []store.LossPoint
	for i := range 30 {
		pts = append(pts, store.LossPoint{Step: i + 1, Loss: 3 / float64(i+1)})
	}
	if err := st.AddLossPoints(ctx, tr.ID, pts); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBuild(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rep, err := Build(ctx, f.st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 4 || len(rep.Loss) != 1 {
		t.Fatalf("%d runs, %d loss curves; want 4 and 1", len(rep.Runs), len(rep.Loss))
	}
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	for _, tc := range []struct {
		row                       int
		label                     string
		finished, errs            int
		answered, asked           int
		em, f1, turns, tokQ, secQ float64
		cost                      float64
	}{
		// EM and F1 are over the questions asked: the error episode, the
		// unfinished one and the missing one count as 0. Turns, tokens, time and
		// cost are per finished episode.
		{0, "llama-react", 2, 1, 2, 3, 1.0 / 3, 0.5, 3, 180, 2, 0.03},
		{1, "llama-ft-react", 3, 0, 2, 3, 2.0 / 3, 2.0 / 3, 8.0 / 3, 120, 4.0 / 3, 0},
		{2, "llama-ft-react-noisy", 2, 0, 2, 3, 1.0 / 3, 1.0 / 3, 4, 0, 0, 0},
		{3, "#" + itoa(f.mixed.ID), 3, 0, 3, 3, 2.0 / 3, 2.2 / 3, 5.0 / 3, 0, 0, 0},
	} {
		r := rep.Runs[tc.row]
		if r.Label != tc.label || r.Finished != tc.finished || r.Errors != tc.errs || r.Answered != tc.answered || r.Asked != tc.asked ||
			!near(r.EM, tc.em) || !near(r.F1, tc.f1) ||
			!near(r.MeanTurns, tc.turns) || !near(r.TokensPerQ, tc.tokQ) || !near(r.SecondsPerQ, tc.secQ) || !near(r.Cost, tc.cost) {
			t.Errorf("run row %d = %+v, want %+v", tc.row, r, tc)
		}
	}

	var mixedMethods, mixedTasks []Breakdown
	for _, b := range rep.ByMethod {
		if b.RunID == f.mixed.ID {
			mixedMethods = append(mixedMethods, b)
		}
	}
	for _, b := range rep.ByTask {
		if b.RunID == f.mixed.ID {
			mixedTasks = append(mixedTasks, b)
		}
	}
	wantMethods := []Breakdown{
		{RunID: f.mixed.ID, Run: "#" + itoa(f.mixed.ID), Key: "cot", N: 1, EM: 1, F1: 1, MeanTurns: 1},
		{RunID: f.mixed.ID, Run: "#" + itoa(f.mixed.ID), Key: "react", N: 2, EM: 0.5, F1: 0.6, MeanTurns: 2},
	}
	wantTasks := []Breakdown{
		{RunID: f.mixed.ID, Run: "#" + itoa(f.mixed.ID), Key: "hotpotqa", N: 2, EM: 0.5, F1: 0.6, MeanTurns: 1.5},
		{RunID: f.mixed.ID, Run: "#" + itoa(f.mixed.ID), Key: "strategyqa", N: 1, EM: 1, F1: 1, MeanTurns: 2},
	}
	if !reflect.DeepEqual(mixedMethods, wantMethods) {
		t.Errorf("by method %+v, want %+v", mixedMethods, wantMethods)
	}
	if !reflect.DeepEqual(mixedTasks, wantTasks) {
		t.Errorf("by task %+v, want %+v", mixedTasks, wantTasks)
	}

	// The fine-tuned runs differ only in noise: one group, clean first.
	var ftGroup *NoiseGroup
	for i, g := range rep.Noise {
		if len(g.Points) == 2 {
			ftGroup = &rep.Noise[i]
		}
	}
	if len(rep.Noise) != 3 || ftGroup == nil || ftGroup.Points[0].RunID != f.ft.ID || ftGroup.Points[1].Noise != 0.5 {
		t.Errorf("noise groups %+v", rep.Noise)
	}
	if h := rep.Turns[0]; !reflect.DeepEqual(h.Counts, []int{0, 0, 1, 0, 1}) {
		t.Errorf("turns histogram of %s: %v", h.Run, h.Counts)
	}
	if lc := rep.Loss[0]; lc.Run != "train-fireact" || len(lc.Points) != 30 || lc.Points[0].Loss != 3 {
		t.Errorf("loss curve %+v", lc)
	}
	if rep.Diff != nil {
		t.Errorf("diff of 4 runs without --diff: %+v", rep.Diff)
	}
}

func itoa(id int64) string { b, _ := json.Marshal(id); return string(b) }

func TestBuildSelectAndDiff(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		opts      Options
		runs      []int64
		diffA     int64
		aOnly     int
		bOnly     int
		diffRows  int
		truncated bool
		err       error
	}{
		{name: "two runs diff themselves", opts: Options{Runs: []string{"llama-react", "llama-ft-react"}},
			runs: []int64{f.base.ID, f.ft.ID}, diffA: f.base.ID, aOnly: 0, bOnly: 1, diffRows: 2},
		{name: "by id, explicit diff", opts: Options{Runs: []string{itoa(f.ft.ID)}, DiffA: "llama-ft-react", DiffB: "llama-ft-react-noisy"},
			runs: []int64{f.ft.ID}, diffA: f.ft.ID, aOnly: 1, bOnly: 0, diffRows: 2},
		{name: "diff rows bounded", opts: Options{Runs: []string{"llama-react", "llama-ft-react"}, MaxDiffRows: 1},
			runs: []int64{f.base.ID, f.ft.ID}, diffA: f.base.ID, bOnly: 1, diffRows: 1, truncated: true},
		{name: "train run only", opts: Options{Runs: []string{"train-fireact"}}, runs: nil},
		{name: "unknown run", opts: Options{Runs: []string{"nope"}}, err: store.ErrNotFound},
		{name: "half a diff", opts: Options{DiffA: "llama-react"}, err: errors.New("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Build(ctx, f.st, tc.opts)
			if tc.err != nil {
				if err == nil || (errors.Is(tc.err, store.ErrNotFound) && !errors.Is(err, store.ErrNotFound)) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, r := range rep.Runs {
				ids = append(ids, r.ID)
			}
			if !reflect.DeepEqual(ids, tc.runs) {
				t.Fatalf("runs %v, want %v", ids, tc.runs)
			}
			if tc.diffA == 0 {
				if rep.Diff != nil {
					t.Fatalf("unexpected diff %+v", rep.Diff)
				}
				return
			}
			d := rep.Diff
			if d == nil || d.A.ID != tc.diffA || d.AOnly != tc.aOnly || d.BOnly != tc.bOnly || len(d.Rows) != tc.diffRows || d.Truncated != tc.truncated {
				t.Fatalf("diff %+v", d)
			}
		})
	}
}

func TestRenderers(t *testing.T) {
	f := newFixture(t)
	rep, err := Build(context.Background(), f.st, Options{DiffA: "llama-react", DiffB: "llama-ft-react"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("text", func(t *testing.T) {
		var b bytes.Buffer
		if err := Text(&b, rep); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, want := range []string{"Runs", "By method", "By task", "Diff: A = llama-react, B = llama-ft-react", "Training loss",
			"right only in B: 1", "noise 0.5", "66.7", "llama+fireact", "ANSWERED", "2 of 3"} {
			if !strings.Contains(out, want) {
				t.Errorf("text lacks %q:\n%s", want, out)
			}
		}
		// Aligned: in the runs table, the EM column starts at the same offset on every line.
		lines := strings.Split(out, "\n")
		var col = -1
		for i, l := range lines {
			if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "NOISE") {
				col = strings.Index(l, " EM ")
				for _, row := range lines[i+1 : i+1+len(rep.Runs)] {
					if row[col] != ' ' || row[col+1] == ' ' {
						t.Errorf("EM column not aligned at %d: %q", col, row)
					}
				}
			}
		}
		if col < 0 {
			t.Errorf("no runs table header in\n%s", out)
		}
	})
	t.Run("json", func(t *testing.T) {
		var b bytes.Buffer
		if err := JSON(&b, rep); err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(b.Bytes(), &back); err != nil {
			t.Fatal(err)
		}
		back.GeneratedAt = rep.GeneratedAt // monotonic clock reading is not serialised
		if !reflect.DeepEqual(&back, rep) {
			t.Errorf("JSON round trip changed the report:\n%+v\n%+v", &back, rep)
		}
		if !strings.Contains(b.String(), `"a_only_correct"`) || !strings.Contains(b.String(), `"b": {`) {
			t.Errorf("JSON lacks diff fields:\n%s", b.String())
		}
	})
	t.Run("html", func(t *testing.T) {
		var b bytes.Buffer
		if err := HTML(&b, rep); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if !strings.Contains(out, "<th>Answered</th>") || !strings.Contains(out, `<td class="n">2 of 3</td>`) {
			t.Error("runs table lacks answered N of M")
		}
		for _, id := range []string{"plot-em", "plot-noise", "plot-turns", "plot-loss"} {
			if !strings.Contains(out, `<svg id="`+id+`"`) {
				t.Errorf("no SVG %s", id)
			}
		}
		if strings.Contains(out, "<b>longer</b>") || !strings.Contains(out, "&lt;b&gt;longer&lt;/b&gt;") {
			t.Error("question text not escaped")
		}
		// Self-contained: no script and no reference to anything outside the file.
		for _, bad := range []string{"<script", "src=", "@import", "url(", "https://"} {
			if strings.Contains(out, bad) {
				t.Errorf("HTML contains %q", bad)
			}
		}
		if n := strings.Count(out, "http://"); n != strings.Count(out, `xmlns="http://www.w3.org/2000/svg"`) {
			t.Errorf("HTML refers to %d http:// addresses besides the SVG namespace", n)
		}
	})
	t.Run("empty store", func(t *testing.T) {
		st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "empty.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rep, err := Build(context.Background(), st, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := HTML(&b, rep); err != nil || !strings.Contains(b.String(), `class="empty"`) {
			t.Fatalf("empty report: %v\n%s", err, b.String())
		}
		if err := Text(&b, rep); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPlotLabels checks that the plots name what they plot: a loss curve by
// its run's name or its adapter (not "#5"), a clean-versus-noisy group by its
// model and adapter file names, method and task (not a cut-off path), with the
// full paths as hover text.
func TestPlotLabels(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := []store.Question{{Task: "hotpotqa", Split: "dev", Index: 0, Text: "Who directed Jaws?", Gold: "Steven Spielberg"}}
	if err := st.UpsertQuestions(ctx, q); err != nil {
		t.Fatal(err)
	}
	const (
		model = "/work/shared/data/models/stories260K.gguf"
		lora  = "/home/me/experiments/2024-05/hotpotqa-react/lora-hotpotqa-multimethod.gguf"
	)
	run := func(r store.Run, loss bool) store.Run {
		t.Helper()
		r.Config = "{}"
		if _, err := st.CreateRun(ctx, &r); err != nil {
			t.Fatal(err)
		}
		if loss {
			tr := store.TrainingRun{RunID: r.ID, Hyperparams: "{}", OutputAdapter: r.Adapter}
			if _, err := st.CreateTrainingRun(ctx, &tr); err != nil {
				t.Fatal(err)
			}
			if err := st.AddLossPoints(ctx, tr.ID, []store.LossPoint{{Step: 1, Loss: 2}, {Step: 2, Loss: 1}}); err != nil {
				t.Fatal(err)
			}
		} else {
			ep := store.Episode{RunID: r.ID, QuestionID: q[0].ID, Status: store.EpisodeDone, EM: 1, F1: 1, Turns: 1}
			if err := st.InsertEpisode(ctx, &ep, nil); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	a := run(store.Run{Kind: store.KindTrain, Model: model, Adapter: lora}, true)
	b := run(store.Run{Kind: store.KindTrain, Model: model, Adapter: "/tmp/other/lora-hotpotqa-multimethod.gguf"}, true)
	run(store.Run{Kind: store.KindTrain, Name: "sft-7b", Model: model, Adapter: "/tmp/x.gguf"}, true)
	c := run(store.Run{Kind: store.KindTrain, Model: model}, true)
	for _, noise := range []float64{0, 0.5} {
		run(store.Run{Kind: store.KindEval, Model: model, Adapter: lora, Method: "react", Task: "hotpotqa", Split: "dev", Noise: noise}, false)
	}
	rep, err := Build(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var curves []string
	for _, lc := range rep.Loss {
		curves = append(curves, lc.Run)
	}
	want := []string{"lora-hotpotqa-multimethod #" + itoa(a.ID), "lora-hotpotqa-multimethod #" + itoa(b.ID), "sft-7b", "#" + itoa(c.ID)}
	if !reflect.DeepEqual(curves, want) {
		t.Errorf("loss curves named %q, want %q", curves, want)
	}
	if len(rep.Noise) != 1 || rep.Noise[0].Label != "stories260K+lora-hotpotqa-multimethod react hotpotqa/dev" ||
		rep.Noise[0].Config != model+"+"+lora+" react hotpotqa/dev" {
		t.Fatalf("noise groups %+v", rep.Noise)
	}
	plots := Plots(rep)
	loss, noise := string(plots[3].SVG), string(plots[1].SVG)
	for _, n := range want {
		if !strings.Contains(loss, `class="legend">`+n+`</text>`) {
			t.Errorf("loss legend lacks %q:\n%s", n, loss)
		}
	}
	// Every line of the label whole, the full configuration as its hover text.
	for _, line := range []string{"stories260K", "+lora-hotpotqa-multimethod", "react hotpotqa/dev"} {
		if !strings.Contains(noise, ">"+line+"</tspan>") {
			t.Errorf("clean-vs-noisy label lacks the line %q:\n%s", line, noise)
		}
	}
	if !strings.Contains(noise, "<title>"+model+"+"+lora+" react hotpotqa/dev</title>") {
		t.Errorf("clean-vs-noisy label has no full-path title:\n%s", noise)
	}
	if strings.Contains(noise, "/work/shared/data/m") && !strings.Contains(noise, "<title>/work") {
		t.Errorf("clean-vs-noisy label shows a path:\n%s", noise)
	}
	// Unnamed eval runs: the EM bars and the turns legend add the model and
	// adapter to the id.
	em, turns := string(plots[0].SVG), string(plots[2].SVG)
	evalName := "#" + itoa(c.ID+1) + " stories260K+lora-hotpotqa-multimethod"
	if !strings.Contains(em, "<title>"+evalName+"</title>") || !strings.Contains(turns, `class="legend">`+evalName+`</text>`) {
		t.Errorf("EM plot or turns legend does not name %q:\n%s\n%s", evalName, em, turns)
	}
}

func TestWrapLabel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"#5", []string{"#5"}},
		{"llama+fireact react hotpotqa/dev", []string{"llama+fireact react", "hotpotqa/dev"}},
		{"Llama-3.2-1B-Instruct-Q4_K_M+lora react hotpotqa/dev", []string{"Llama-3.2-1B-Instruct-Q4_K_M", "+lora react hotpotqa/dev"}},
		{"Meta-Llama-3.1-8B-Instruct-Q4_K_M react", []string{"Meta-Llama-3.…nstruct-Q4_K_M", "react"}},
		{"a b c d e f g h i j k l m n o p q r s t u v w x y z aa bb cc dd ee ff gg hh ii jj kk", []string{"a b c d e f g h i j k l m n", "o p q r s t u v w x y z aa", "bb cc dd ee f…gg hh ii jj kk"}},
	} {
		if got := wrapLabel(tc.in, maxLabelLen, maxLabelLines); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("wrapLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestReportShowsOracleAndNoiseKind checks that a run's recorded oracle retry
// and noise kind (agent.RunConfig's JSON fields) show in the text and HTML
// reports: a Reflexion score that used the gold answer must not pass for a
// plain one, nor "None" noise for "random" noise.
func TestReportShowsOracleAndNoiseKind(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, r := range []store.Run{
		{Name: "teacher", Kind: store.KindGenerate, Method: "reflexion", Task: "hotpotqa", Split: "train",
			Config: `{"version":1,"method":"reflexion","oracle_retry":true,"noise":0}`},
		{Name: "student", Kind: store.KindEval, Method: "react", Task: "hotpotqa", Split: "dev", Noise: 0.5,
			Config: `{"version":1,"method":"react","oracle_retry":false,"noise":0.5,"noise_kind":"random"}`},
	} {
		if _, err := st.CreateRun(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Build(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var text, page bytes.Buffer
	if err := Text(&text, rep); err != nil {
		t.Fatal(err)
	}
	if err := HTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), page.String()} {
		if !strings.Contains(out, "reflexion+oracle") || !strings.Contains(out, "0.5 random") {
			t.Fatalf("report lacks the oracle retry or the noise kind:\n%s", out)
		}
		if strings.Contains(out, "react+oracle") {
			t.Fatalf("a run without oracle retry is marked as one:\n%s", out)
		}
	}
}
