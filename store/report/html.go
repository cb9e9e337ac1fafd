package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"

	"github.com/fireact/fireact/store"
)

// Plot is one rendered plot of the HTML page.
type Plot struct {
	ID    string
	Title string
	SVG   template.HTML // empty when there is nothing to draw
	Empty string        // why there is no plot
}

// Plots draws the report's plots as inline SVG: EM by run, EM clean versus
// noisy, the turns histogram, the training loss curves, when there are
// policy-gradient runs their reward, KL and clipping by step, and, when the
// store has improve rounds, dev EM by round.
func Plots(rep *Report) []Plot {
	ps := []Plot{emPlot(rep), noisePlot(rep), turnsPlot(rep), lossPlot(rep)}
	if len(rep.Policy) > 0 {
		ps = append(ps, policyPlots(rep)...)
	}
	if len(rep.Rounds) > 0 {
		ps = append(ps, roundsPlot(rep))
	}
	return ps
}

// roundsPlot draws each improve job's dev EM by round (round 0: the
// starting student).
func roundsPlot(rep *Report) Plot {
	p := Plot{ID: "plot-rounds", Title: "Dev EM by improve round"}
	var series []xySeries
	idx := map[string]int{}
	for _, r := range rep.Rounds {
		if r.Status != store.StatusDone {
			continue // no dev score yet
		}
		i, ok := idx[r.Job]
		if !ok {
			i = len(series)
			idx[r.Job] = i
			series = append(series, xySeries{name: r.Job})
		}
		series[i].x = append(series[i].x, float64(r.Round))
		series[i].y = append(series[i].y, r.DevEM)
	}
	if len(series) == 0 {
		p.Empty = "No finished improve round."
		return p
	}
	p.SVG = template.HTML(linePlotWith(p.ID, p.Title, "round", "dev EM", series, lineOptions{yTicks: emTicks, yFormat: pctTick, integerX: true}))
	return p
}

var emTicks = []float64{0, 0.25, 0.5, 0.75, 1}

func emPlot(rep *Report) Plot {
	p := Plot{ID: "plot-em", Title: "EM by run"}
	if len(rep.Runs) == 0 {
		p.Empty = "No runs with episodes."
		return p
	}
	var cats []string
	var vals [][]float64
	for _, r := range rep.Runs {
		cats = append(cats, plotName(r))
		vals = append(vals, []float64{r.EM})
	}
	p.SVG = template.HTML(groupedBars(p.ID, p.Title, "EM", cats, nil, []string{"EM"}, vals, 1, emTicks, pctTick))
	return p
}

// plotName names a run in a plot: its name, or for an unnamed run its id with
// the model and adapter file names, which say more than "#3" alone.
func plotName(r RunRow) string {
	if r.Label != "#"+strconv.FormatInt(r.ID, 10) || r.Model == "" {
		return r.Label
	}
	n := r.Label + " " + fileLabel(r.Model)
	if r.Adapter != "" {
		n += "+" + fileLabel(r.Adapter)
	}
	return n
}

func noisePlot(rep *Report) Plot {
	p := Plot{ID: "plot-noise", Title: "EM clean vs noisy"}
	if len(rep.Noise) == 0 {
		p.Empty = "No runs with episodes."
		return p
	}
	levels := map[float64]bool{}
	for _, g := range rep.Noise {
		for _, pt := range g.Points {
			levels[pt.Noise] = true
		}
	}
	var noises []float64
	for n := range levels {
		noises = append(noises, n)
	}
	sort.Float64s(noises)
	series := make([]string, len(noises))
	for i, n := range noises {
		series[i] = noiseLabel(n)
	}
	var cats, full []string
	var vals [][]float64
	for _, g := range rep.Noise {
		row := make([]float64, len(noises))
		for i := range row {
			row[i] = math.NaN()
		}
		for _, pt := range g.Points {
			// Two runs of one configuration at the same noise: the later one is shown.
			row[sort.SearchFloat64s(noises, pt.Noise)] = pt.EM
		}
		cats = append(cats, g.Label)
		full = append(full, g.Config)
		vals = append(vals, row)
	}
	p.SVG = template.HTML(groupedBars(p.ID, p.Title, "EM", cats, full, series, vals, 1, emTicks, pctTick))
	return p
}

func turnsPlot(rep *Report) Plot {
	p := Plot{ID: "plot-turns", Title: "Turns per episode (share of each run's episodes)"}
	maxTurns, total := 0, 0
	for _, h := range rep.Turns {
		maxTurns = max(maxTurns, len(h.Counts))
		for _, c := range h.Counts {
			total += c
		}
	}
	if total == 0 {
		p.Empty = "No finished episodes."
		return p
	}
	names := map[int64]string{}
	for _, r := range rep.Runs {
		names[r.ID] = plotName(r)
	}
	var series []string
	for _, h := range rep.Turns {
		n, ok := names[h.RunID]
		if !ok {
			n = h.Run
		}
		series = append(series, n)
	}
	// Start at the fewest turns any episode took: leading empty bins say nothing.
	minTurns := maxTurns
	for _, h := range rep.Turns {
		for t, c := range h.Counts {
			if c > 0 {
				minTurns = min(minTurns, t)
				break
			}
		}
	}
	var cats []string
	var vals [][]float64
	hi := 0.0
	for t := minTurns; t < maxTurns; t++ {
		row := make([]float64, len(rep.Turns))
		for si, h := range rep.Turns {
			n := 0
			for _, c := range h.Counts {
				n += c
			}
			if t < len(h.Counts) && n > 0 {
				row[si] = float64(h.Counts[t]) / float64(n)
			}
			hi = max(hi, row[si])
		}
		cats = append(cats, strconv.Itoa(t))
		vals = append(vals, row)
	}
	ticks, _, top := niceTicks(0, hi, 4)
	p.SVG = template.HTML(groupedBars(p.ID, p.Title, "share of episodes", cats, nil, series, vals, top, ticks, pctTick))
	return p
}

func lossPlot(rep *Report) Plot {
	p := Plot{ID: "plot-loss", Title: "Training loss"}
	var series []xySeries
	for _, lc := range rep.Loss {
		s := xySeries{name: lc.Run}
		for _, pt := range lc.Points {
			s.x = append(s.x, float64(pt.Step))
			s.y = append(s.y, pt.Loss)
		}
		series = append(series, s)
	}
	if len(series) == 0 {
		p.Empty = "No training runs with a loss curve among the selected runs."
		return p
	}
	p.SVG = template.HTML(linePlot(p.ID, p.Title, "step", "loss", series))
	return p
}

// policyPlots draws the policy-gradient runs' figures by step: the batch's
// mean reward, the KL to the reference (runs without one have no line) and
// the fraction of tokens clipped.
func policyPlots(rep *Report) []Plot {
	reward := policyPlot(rep, "plot-reward", "GRPO mean reward by step", "mean reward", lineOptions{},
		func(p PolicyPoint) (float64, bool) { return p.Reward, true })
	kl := policyPlot(rep, "plot-kl", "GRPO KL to the reference by step (k3)", "KL", lineOptions{},
		func(p PolicyPoint) (float64, bool) {
			if p.KL == nil {
				return 0, false
			}
			return *p.KL, true
		})
	if kl.SVG == "" {
		kl.Empty = "No policy-gradient run with a reference (KL penalty off)."
	}
	clipped := policyPlot(rep, "plot-clipped", "GRPO tokens clipped by step", "tokens clipped",
		lineOptions{yTicks: emTicks, yFormat: pctTick}, func(p PolicyPoint) (float64, bool) { return p.Clipped, true })
	return []Plot{reward, kl, clipped}
}

// policyPlot draws one figure of every policy curve by step; y says a
// point's value, or false for a step without one.
func policyPlot(rep *Report, id, title, yName string, o lineOptions, y func(PolicyPoint) (float64, bool)) Plot {
	p := Plot{ID: id, Title: title}
	var series []xySeries
	for _, pc := range rep.Policy {
		s := xySeries{name: pc.Run}
		for _, pt := range pc.Points {
			if v, ok := y(pt); ok {
				s.x = append(s.x, float64(pt.Step))
				s.y = append(s.y, v)
			}
		}
		if len(s.x) > 0 {
			series = append(series, s)
		}
	}
	if len(series) == 0 {
		p.Empty = "No policy-gradient steps among the selected runs."
		return p
	}
	o.integerX = true
	p.SVG = template.HTML(linePlotWith(p.ID, p.Title, "step", yName, series, o))
	return p
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":   pct,
	"noise": noiseLabel,
	"f":     func(format string, v any) string { return fmt.Sprintf(format, v) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>fireact report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.win td { background: #eef8ee; } tr.loss td { background: #fbeeee; }
.meta { color: #666; font-size: 0.85em; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
svg.plot { background: #fff; border: 1px solid #e4e4e4; max-width: 100%; height: auto; }
svg .grid { stroke: #eee; } svg .axis { stroke: #444; }
svg text { font-size: 11px; fill: #333; } svg .ptitle { font-size: 14px; font-weight: 600; }
svg .axisname { font-size: 12px; } svg .cat { font-size: 11px; }
.empty { color: #888; font-style: italic; }
</style>
</head>
<body>
<h1>fireact report</h1>
<p class="meta">Generated {{.R.GeneratedAt.Format "2006-01-02 15:04:05 UTC"}} from {{.R.Database}}: {{len .R.Runs}} runs compared, {{len .R.Loss}} loss curves.</p>

<h2>Plots</h2>
<div class="plots">
{{range .Plots}}<figure id="fig-{{.ID}}">{{if .SVG}}{{.SVG}}{{else}}<p class="empty" data-plot="{{.ID}}">{{.Title}}: {{.Empty}}</p>{{end}}</figure>
{{end}}</div>

{{if .R.Runs}}<h2>Runs</h2>
<table id="runs">
<tr><th>Run</th><th>Kind</th><th>Model</th><th>Method</th><th>Task</th><th>Noise</th><th>Answered</th><th>Errors</th><th>EM</th><th>F1</th><th>Turns</th><th>Tokens/q</th><th>Seconds/q</th><th>Cost</th><th>Cost/q</th></tr>
{{range .R.Runs}}<tr><td>{{.Label}}</td><td>{{.Kind}}</td><td>{{.Model}}{{if .Adapter}}+{{.Adapter}}{{end}}</td><td>{{.Method}}{{if .OracleRetry}}+oracle{{end}}</td><td>{{.Task}}{{if .Split}}/{{.Split}}{{end}}</td><td>{{noise .Noise}}{{if and .Noise .NoiseKind}} {{.NoiseKind}}{{end}}</td>
<td class="n">{{.Answered}} of {{.Asked}}</td><td class="n">{{.Errors}}</td><td class="n">{{pct .EM}}</td><td class="n">{{pct .F1}}</td><td class="n">{{f "%.2f" .MeanTurns}}</td><td class="n">{{f "%.0f" .TokensPerQ}}</td><td class="n">{{f "%.2f" .SecondsPerQ}}</td><td class="n">{{f "%.4f" .Cost}}</td><td class="n">{{f "%.5f" .CostPerQ}}</td></tr>
{{end}}</table>{{end}}

{{if .R.ByMethod}}<h2>By method</h2>
<table id="by-method"><tr><th>Run</th><th>Method</th><th>N</th><th>EM</th><th>F1</th><th>Turns</th></tr>
{{range .R.ByMethod}}<tr><td>{{.Run}}</td><td>{{.Key}}</td><td class="n">{{.N}}</td><td class="n">{{pct .EM}}</td><td class="n">{{pct .F1}}</td><td class="n">{{f "%.2f" .MeanTurns}}</td></tr>
{{end}}</table>{{end}}

{{if .R.ByTask}}<h2>By task</h2>
<table id="by-task"><tr><th>Run</th><th>Task</th><th>N</th><th>EM</th><th>F1</th><th>Turns</th></tr>
{{range .R.ByTask}}<tr><td>{{.Run}}</td><td>{{.Key}}</td><td class="n">{{.N}}</td><td class="n">{{pct .EM}}</td><td class="n">{{pct .F1}}</td><td class="n">{{f "%.2f" .MeanTurns}}</td></tr>
{{end}}</table>{{end}}

{{if .R.Rounds}}<h2>Improve rounds (rejection sampling)</h2>
<table id="rounds"><tr><th>Job</th><th>Round</th><th>Status</th><th>Samples</th><th>Passed</th><th>Kept</th><th>Solved</th><th>Trained on (kept + teacher)</th><th>KV shared</th><th>Dev EM</th><th>Dev F1</th></tr>
{{range .R.Rounds}}<tr><td>{{.Job}}</td><td class="n">{{.Round}}</td><td>{{.Status}}{{if ne .Status "done"}} ({{.Phase}}){{end}}</td>{{if .Round}}<td class="n">{{.Samples}} (k={{.K}})</td><td class="n">{{.Passed}}</td><td class="n">{{.Kept}}</td><td class="n">{{.Solved}}</td><td class="n">{{.Self}} + {{.Teacher}}</td><td class="n">{{pct .KVShared}}%</td>{{else}}<td colspan="6">starting student</td>{{end}}<td class="n">{{pct .DevEM}}</td><td class="n">{{pct .DevF1}}</td></tr>
{{end}}</table>{{end}}

{{with .R.Diff}}<h2>Per-question diff: A = {{.A.Label}}, B = {{.B.Label}}</h2>
<p>{{.Questions}} questions, {{.Both}} answered by both. Right only in A: {{.AOnly}}; right only in B: {{.BOnly}}.{{if .Truncated}} Only the first {{len .Rows}} differing questions are listed.{{end}}</p>
{{if .Rows}}<table id="diff"><tr><th>#</th><th>Question</th><th>Gold</th><th>A</th><th>EM A</th><th>B</th><th>EM B</th></tr>
{{range .Rows}}<tr class="{{if gt .EMB .EMA}}win{{else if lt .EMB .EMA}}loss{{end}}"><td class="n">{{.Index}}</td><td>{{.Question}}</td><td>{{.Gold}}</td><td>{{if .HasA}}{{.PredA}}{{if ne .StatusA "done"}} <i>({{.StatusA}})</i>{{end}}{{else}}<i>none</i>{{end}}</td><td class="n">{{f "%.0f" .EMA}}</td><td>{{if .HasB}}{{.PredB}}{{if ne .StatusB "done"}} <i>({{.StatusB}})</i>{{end}}{{else}}<i>none</i>{{end}}</td><td class="n">{{f "%.0f" .EMB}}</td></tr>
{{end}}</table>{{end}}{{end}}
</body>
</html>
`))

// HTML writes the report as one self-contained HTML page: inline CSS and
// SVG, no script, nothing fetched from the network.
func HTML(w io.Writer, rep *Report) error {
	if err := page.Execute(w, struct {
		R     *Report
		Plots []Plot
	}{rep, Plots(rep)}); err != nil {
		return fmt.Errorf("report: html: %w", err)
	}
	return nil
}
