package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fireact/fireact/store"
)

// JSON writes the report as indented JSON.
func JSON(w io.Writer, rep *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("report: json: %w", err)
	}
	return nil
}

// pct formats a [0, 1] mean as a percentage, the way EM is reported.
func pct(v float64) string { return fmt.Sprintf("%.1f", 100*v) }

// noiseLabel names a noise setting.
func noiseLabel(n float64) string {
	if n == 0 {
		return "clean"
	}
	return fmt.Sprintf("noise %g", n)
}

// noiseKindLabel is noiseLabel with the kind of noise, when recorded.
func noiseKindLabel(n float64, kind string) string {
	if n == 0 || kind == "" {
		return noiseLabel(n)
	}
	return noiseLabel(n) + " " + kind
}

// clip shortens s to at most n runes for a table cell.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Text writes the report as aligned plain-text tables for a terminal.
func Text(w io.Writer, rep *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	section := func(title string) {
		tw.Flush()
		fmt.Fprintf(w, "\n%s\n", title)
	}

	fmt.Fprintf(w, "fireact report: %d runs compared, %d loss curves (%s)\n", len(rep.Runs), len(rep.Loss), rep.Database)
	if len(rep.Runs) > 0 {
		section("Runs")
		p("RUN\tKIND\tMODEL\tMETHOD\tTASK\tNOISE\tANSWERED\tEM\tF1\tTURNS\tTOK/Q\tSEC/Q\tCOST\n")
		for _, r := range rep.Runs {
			model := r.Model
			if r.Adapter != "" {
				model += "+" + r.Adapter
			}
			// EM is over the questions asked: "answered 499 of 500" says how
			// many of them count.
			p("%s\t%s\t%s\t%s\t%s\t%s\t%d of %d\t%s\t%s\t%.2f\t%.0f\t%.2f\t%.4f\n", clip(r.Label, 28), r.Kind, clip(orDash(model), 28),
				orDash(methodLabel(r.Method, r.OracleRetry)), orDash(r.Task), noiseKindLabel(r.Noise, r.NoiseKind), r.Answered, r.Asked, pct(r.EM), pct(r.F1), r.MeanTurns,
				r.TokensPerQ, r.SecondsPerQ, r.Cost)
		}
	}
	for _, part := range []struct {
		title, key string
		rows       []Breakdown
	}{{"By method", "METHOD", rep.ByMethod}, {"By task", "TASK", rep.ByTask}} {
		if len(part.rows) == 0 {
			continue
		}
		section(part.title)
		p("RUN\t%s\tN\tEM\tF1\tTURNS\n", part.key)
		for _, b := range part.rows {
			p("%s\t%s\t%d\t%s\t%s\t%.2f\n", clip(b.Run, 28), orDash(b.Key), b.N, pct(b.EM), pct(b.F1), b.MeanTurns)
		}
	}
	if d := rep.Diff; d != nil {
		section(fmt.Sprintf("Diff: A = %s, B = %s", d.A.Label, d.B.Label))
		tw.Flush()
		fmt.Fprintf(w, "%d questions, %d answered by both; right only in A: %d, right only in B: %d\n",
			d.Questions, d.Both, d.AOnly, d.BOnly)
		if len(d.Rows) > 0 {
			p("#\tQUESTION\tGOLD\tA\tEM A\tB\tEM B\n")
			for _, r := range d.Rows {
				pa, pb := r.PredA, r.PredB
				pa, pb = cellOf(r.HasA, pa, r.StatusA), cellOf(r.HasB, pb, r.StatusB)
				p("%d\t%s\t%s\t%s\t%.0f\t%s\t%.0f\n", r.Index, clip(r.Question, 40), clip(r.Gold, 20), clip(pa, 20), r.EMA, clip(pb, 20), r.EMB)
			}
			if d.Truncated {
				p("…\n")
			}
		}
	}
	if len(rep.Loss) > 0 {
		section("Training loss")
		p("RUN\tSTEPS\tFIRST\tLAST\tMIN\n")
		for _, lc := range rep.Loss {
			first, last, lo := lc.Points[0].Loss, lc.Points[len(lc.Points)-1].Loss, lc.Points[0].Loss
			for _, pt := range lc.Points {
				lo = min(lo, pt.Loss)
			}
			p("%s\t%d\t%.4f\t%.4f\t%.4f\n", clip(lc.Run, 28), lc.Points[len(lc.Points)-1].Step, first, last, lo)
		}
	}
	if len(rep.Policy) > 0 {
		section("Policy-gradient steps (GRPO)")
		p("RUN\tSTEPS\tREWARD FIRST\tREWARD LAST\tKL LAST\tCLIPPED MEAN\tOBJECTIVE LAST\n")
		for _, pc := range rep.Policy {
			first, last := pc.Points[0], pc.Points[len(pc.Points)-1]
			kl := "-"
			if last.KL != nil {
				kl = fmt.Sprintf("%.4f", *last.KL)
			}
			clipped := 0.0
			for _, pt := range pc.Points {
				clipped += pt.Clipped
			}
			p("%s\t%d\t%.3f\t%.3f\t%s\t%s%%\t%.4f\n", clip(pc.Run, 28), last.Step, first.Reward, last.Reward, kl,
				pct(clipped/float64(len(pc.Points))), last.Objective)
		}
	}
	if len(rep.Rounds) > 0 {
		section("Improve rounds (rejection sampling)")
		p("JOB\tROUND\tSTATUS\tSAMPLES\tPASSED\tKEPT\tSOLVED\tTRAINED ON\tKV SHARED\tDEV EM\tDEV F1\n")
		for _, r := range rep.Rounds {
			status := string(r.Status)
			if r.Status != store.StatusDone && r.Phase != "" {
				status += " (" + r.Phase + ")"
			}
			if r.Round == 0 {
				// The starting student: evaluated, nothing sampled or trained.
				p("%s\t0\t%s\t-\t-\t-\t-\t-\t-\t%s\t%s\n", clip(r.Job, 28), status, pct(r.DevEM), pct(r.DevF1))
				continue
			}
			p("%s\t%d\t%s\t%d (k=%d)\t%d\t%d\t%d\t%d + %d teacher\t%s%%\t%s\t%s\n", clip(r.Job, 28), r.Round, status, r.Samples, r.K,
				r.Passed, r.Kept, r.Solved, r.Self, r.Teacher, pct(r.KVShared), pct(r.DevEM), pct(r.DevF1))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("report: text: %w", err)
	}
	return nil
}

// cellOf renders one side of a diff row: the prediction, marked when the
// episode did not end normally.
func cellOf(has bool, pred string, status store.EpisodeStatus) string {
	switch {
	case !has:
		return "(none)"
	case status != store.EpisodeDone:
		return pred + " (" + string(status) + ")"
	}
	return pred
}
