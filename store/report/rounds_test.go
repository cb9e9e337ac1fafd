package report

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fireact/fireact/store"
)

// TestReportRounds: the rounds of an improve job recorded in the store are a
// table in the text and HTML reports and a dev-EM-by-round plot; a report on
// selected runs shows the jobs whose dev runs are among them.
func TestReportRounds(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, r := range []store.Round{
		{Job: "star", Round: 0, Status: store.StatusDone, Phase: store.PhaseDone, DevRunID: f.base.ID, DevEM: 0.25, DevF1: 0.4},
		{Job: "star", Round: 1, Status: store.StatusDone, Phase: store.PhaseDone, K: 4, Questions: 10, Samples: 40, Passed: 12,
			Kept: 9, Solved: 6, SelfExamples: 9, TeacherExamples: 30, PromptTokens: 4000, PromptDecoded: 1000,
			DevRunID: f.ft.ID, DevEM: 0.5, DevF1: 0.6},
		{Job: "star", Round: 2, Status: store.StatusInterrupted, Phase: store.PhaseSample, K: 4, Samples: 7},
	} {
		if err := f.st.SaveRound(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Build(ctx, f.st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 3 || rep.Rounds[1].KVShared != 0.75 || rep.Rounds[1].Kept != 9 {
		t.Fatalf("rounds: %+v", rep.Rounds)
	}
	var b bytes.Buffer
	if err := Text(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Improve rounds", "40 (k=4)", "9 + 30 teacher", "75.0%", "interrupted (sample)"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := HTML(&b, rep); err != nil {
		t.Fatal(err)
	}
	out = b.String()
	for _, want := range []string{`<table id="rounds">`, `<svg id="plot-rounds"`, "starting student", "interrupted (sample)", "star round 1: 0.5"} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}

	// Dev EM on a 0–100% axis, rounds on whole-number ticks.
	plot := out[strings.Index(out, `<svg id="plot-rounds"`):]
	plot = plot[:strings.Index(plot, "</svg>")]
	for _, want := range []string{">100%<", ">0%<", `">0</text>`, `">1</text>`} {
		if !strings.Contains(plot, want) {
			t.Errorf("rounds plot lacks %s:\n%s", want, plot)
		}
	}
	if strings.Contains(plot, ">0.5</text>") || strings.Contains(plot, "0000") {
		t.Errorf("rounds plot has fractional round ticks or float noise:\n%s", plot)
	}

	// Selected runs: the job of a selected dev run, not another job's.
	if rep, err = Build(ctx, f.st, Options{Runs: []string{"llama-ft-react"}}); err != nil || len(rep.Rounds) != 3 {
		t.Errorf("report on the job's dev run: %d rounds (%v)", len(rep.Rounds), err)
	}
	if rep, err = Build(ctx, f.st, Options{Runs: []string{"llama-ft-react-noisy"}}); err != nil || len(rep.Rounds) != 0 {
		t.Errorf("report on another run: %d rounds (%v)", len(rep.Rounds), err)
	}
}
