package report

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fireact/fireact/store"
)

// TestReportPolicyCurves: two GRPO training runs, one with a KL penalty and
// one without a reference, are drawn as reward and clipping curves by step;
// the KL plot has a line only for the run with a reference, a report without
// one says why it has no KL plot, and the text table marks the missing KL.
func TestReportPolicyCurves(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "fireact.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, run := range []struct {
		name  string
		hasKL bool
	}{{"kl/r1/grpo", true}, {"nokl/r1/grpo", false}} {
		r := store.Run{Name: run.name, Kind: store.KindTrain, Config: "{}"}
		if _, err := st.CreateRun(ctx, &r); err != nil {
			t.Fatal(err)
		}
		tr := store.TrainingRun{RunID: r.ID}
		if _, err := st.CreateTrainingRun(ctx, &tr); err != nil {
			t.Fatal(err)
		}
		var loss []store.LossPoint
		var steps []store.PolicyStep
		for i := 1; i <= 4; i++ {
			p := store.PolicyStep{Step: i, Rollouts: 2, Tokens: 100, Reward: 0.1 * float64(i), Surrogate: 0.5,
				Clipped: 0.02 * float64(i-1), KL: 0.001 * float64(i-1), HasKL: run.hasKL, Objective: 0.5 - 0.05*0.001*float64(i-1)}
			steps = append(steps, p)
			loss = append(loss, store.LossPoint{Step: i, Loss: -p.Objective})
		}
		if err := st.AddLossPoints(ctx, tr.ID, loss); err != nil {
			t.Fatal(err)
		}
		if err := st.AddPolicySteps(ctx, tr.ID, steps); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Build(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Policy) != 2 || rep.Policy[0].Points[3].KL == nil || rep.Policy[1].Points[3].KL != nil {
		t.Fatalf("policy curves: %+v", rep.Policy)
	}
	plots := map[string]Plot{}
	for _, p := range Plots(rep) {
		plots[p.ID] = p
	}
	for id, want := range map[string][]string{
		"plot-reward":  {"kl/r1/grpo step 4: 0.4<", "nokl/r1/grpo step 4: 0.4<"},
		"plot-kl":      {"kl/r1/grpo step 4: 0.003<"},
		"plot-clipped": {">100%<", "nokl/r1/grpo step 2: 0.02<"},
	} {
		svg := string(plots[id].SVG)
		for _, w := range want {
			if !strings.Contains(svg, w) {
				t.Errorf("%s lacks %q:\n%s", id, w, svg)
			}
		}
	}
	if strings.Contains(string(plots["plot-kl"].SVG), "nokl") {
		t.Error("the KL plot draws the run without a reference")
	}
	var b bytes.Buffer
	if err := Text(&b, rep); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	rows := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 7 {
			rows[f[0]] = strings.Join(f[1:5], " ")
		}
	}
	if !strings.Contains(text, "Policy-gradient steps") || rows["kl/r1/grpo"] != "4 0.100 0.400 0.0030" || rows["nokl/r1/grpo"] != "4 0.100 0.400 -" {
		t.Errorf("text table (steps, first and last reward, last KL): %q\n%s", rows, text)
	}

	rep, err = Build(ctx, st, Options{Runs: []string{"nokl/r1/grpo"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Plots(rep) {
		if p.ID == "plot-kl" && (p.SVG != "" || !strings.Contains(p.Empty, "KL penalty off")) {
			t.Errorf("KL plot of a run without a reference: %q, %q", p.SVG, p.Empty)
		}
	}
}
