package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The plots are drawn as inline SVG by this file: a report must open offline
// and stay one file, so no charting library, script or font is fetched.

// palette are the series colours (colour-blind safe, Okabe–Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"}

func color(i int) string { return palette[i%len(palette)] }

// Plot geometry, in SVG user units.
const (
	plotW       = 760
	plotH       = 340
	marginL     = 60
	marginR     = 20
	marginT     = 36
	marginB     = 90 // room for one line of slanted category labels
	legendRowH  = 18
	maxLabelLen = 28
	// A category label wraps onto at most maxLabelLines lines of
	// labelLineH each, the plot growing to make room.
	maxLabelLines = 3
	labelLineH    = 13
)

// svgDoc accumulates the markup of one plot.
type svgDoc struct {
	b       strings.Builder
	h       float64 // total height (grows with the legend and label lines)
	x0      float64 // plot area
	y0      float64
	w, hh   float64
	legendY float64 // where the legend starts
}

// newSVG starts a plot with legendRows legend entries and category labels of
// up to labelLines lines.
func newSVG(legendRows, labelLines int) *svgDoc {
	extra := float64(max(labelLines-1, 0)) * labelLineH
	d := &svgDoc{x0: marginL, y0: marginT, w: plotW - marginL - marginR, hh: plotH - marginT - marginB}
	d.legendY = plotH + extra
	d.h = d.legendY + float64(legendRows)*legendRowH
	return d
}

func (d *svgDoc) add(format string, args ...any) { fmt.Fprintf(&d.b, format, args...) }

// text adds escaped text.
func (d *svgDoc) text(x, y float64, anchor, class, s string, extra string) {
	d.add(`<text x="%.1f" y="%.1f" text-anchor="%s" class="%s"%s>%s</text>`, x, y, anchor, class, extra, html.EscapeString(s))
}

// finish wraps the markup in an <svg> element with an id and accessible title.
func (d *svgDoc) finish(id, title string) string {
	return fmt.Sprintf(`<svg id="%s" class="plot" xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" viewBox="0 0 %d %.0f" role="img" aria-label="%s"><title>%s</title><text x="%d" y="20" class="ptitle">%s</text>%s</svg>`,
		html.EscapeString(id), plotW, d.h, plotW, d.h, html.EscapeString(title), html.EscapeString(title), marginL, html.EscapeString(title), d.b.String())
}

// yAxis draws horizontal grid lines and tick labels for [lo, hi].
func (d *svgDoc) yAxis(ticks []float64, lo, hi float64, format func(float64) string, name string) {
	for _, t := range ticks {
		y := d.yOf(t, lo, hi)
		d.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>`, d.x0, y, d.x0+d.w, y)
		d.text(d.x0-6, y+4, "end", "tick", format(t), "")
	}
	d.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="axis"/>`, d.x0, d.y0, d.x0, d.y0+d.hh)
	d.add(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="axis"/>`, d.x0, d.y0+d.hh, d.x0+d.w, d.y0+d.hh)
	d.text(14, d.y0+d.hh/2, "middle", "axisname", name, fmt.Sprintf(` transform="rotate(-90 14 %.1f)"`, d.y0+d.hh/2))
}

func (d *svgDoc) yOf(v, lo, hi float64) float64 {
	if hi <= lo {
		return d.y0 + d.hh
	}
	return d.y0 + d.hh - (v-lo)/(hi-lo)*d.hh
}

// categoryLabel writes a slanted label under a category, wrapped onto
// lines. Its <title> (the hover text) is title, or the whole label when a line
// had to be shortened.
func (d *svgDoc) categoryLabel(cx float64, s, title string) {
	y := d.y0 + d.hh + 14
	lines := wrapLabel(s, maxLabelLen, maxLabelLines)
	d.add(`<text x="%.1f" y="%.1f" text-anchor="end" class="cat" transform="rotate(-30 %.1f %.1f)">`, cx, y, cx, y)
	if title == "" && strings.Join(lines, " ") != strings.Join(strings.Fields(s), " ") {
		title = s
	}
	if title != "" {
		d.add(`<title>%s</title>`, html.EscapeString(title))
	}
	for i, l := range lines {
		dy := "0"
		if i > 0 {
			dy = fmt.Sprint(labelLineH)
		}
		d.add(`<tspan x="%.1f" dy="%s">%s</tspan>`, cx, dy, html.EscapeString(l))
	}
	d.add(`</text>`)
}

// wrapLabel breaks a label into at most maxLines lines of at most n runes, at
// spaces and before a "+" (model+adapter). A word longer than a line loses
// its middle, not its end: the end of a model or adapter name is what tells
// two of them apart.
func wrapLabel(s string, n, maxLines int) []string {
	var words []string
	for _, f := range strings.Fields(s) {
		parts := strings.Split(f, "+")
		for i, p := range parts {
			if i > 0 {
				p = "+" + p
			}
			if p != "" {
				words = append(words, p)
			}
		}
	}
	var lines []string
	for _, w := range words {
		last := len(lines) - 1
		switch {
		case last >= 0 && runeLen(lines[last])+1+runeLen(w) <= n && !strings.HasPrefix(w, "+"):
			lines[last] += " " + w
		case last >= 0 && strings.HasPrefix(w, "+") && runeLen(lines[last])+runeLen(w) <= n:
			lines[last] += w
		case len(lines) == maxLines:
			lines[last] += " " + w
		default:
			lines = append(lines, w)
		}
	}
	for i, l := range lines {
		lines[i] = clipMiddle(l, n)
	}
	return lines
}

func runeLen(s string) int { return len([]rune(s)) }

// clipMiddle shortens s to n runes by replacing its middle with "…".
func clipMiddle(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	head := (n - 1) / 2
	return string(r[:head]) + "…" + string(r[len(r)-(n-1-head):])
}

// labelLines is the number of lines the longest of labels wraps onto.
func labelLines(labels []string) int {
	m := 1
	for _, l := range labels {
		m = max(m, len(wrapLabel(l, maxLabelLen, maxLabelLines)))
	}
	return m
}

// legend lists series names under the plot.
func (d *svgDoc) legend(names []string) {
	for i, n := range names {
		y := d.legendY + float64(i)*legendRowH - 6
		d.add(`<rect x="%d" y="%.1f" width="12" height="12" fill="%s"/>`, marginL, y-10, color(i))
		d.text(marginL+18, y, "start", "legend", n, "")
	}
}

// niceTicks returns about n round tick values covering [lo, hi], and the
// widened range they span.
func niceTicks(lo, hi float64, n int) ([]float64, float64, float64) {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	start, end := math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	var ticks []float64
	for t := start; t <= end+step/2; t += step {
		ticks = append(ticks, math.Round(t/step)*step)
	}
	return ticks, start, end
}

func pctTick(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }

// groupedBars draws one group of bars per category with one bar per series;
// NaN values are left out. Values lie in [0, hi]. Each bar has a <title>
// tooltip with its exact value; catTitles, when given, are the categories'
// hover texts (the full names their labels shorten).
func groupedBars(id, title, yName string, categories, catTitles, series []string, values [][]float64, hi float64, ticks []float64, format func(float64) string) string {
	legendRows := 0
	if len(series) > 1 {
		legendRows = len(series)
	}
	d := newSVG(legendRows, labelLines(categories))
	d.yAxis(ticks, 0, hi, format, yName)
	groupW := d.w / float64(max(len(categories), 1))
	barW := groupW * 0.8 / float64(max(len(series), 1))
	for ci, cat := range categories {
		gx := d.x0 + float64(ci)*groupW + groupW*0.1
		for si := range series {
			v := values[ci][si]
			if math.IsNaN(v) {
				continue
			}
			y := d.yOf(v, 0, hi)
			h := d.y0 + d.hh - y
			// A zero still gets a hairline, so that "0" and "no run" look different.
			h = max(h, 1)
			tip := fmt.Sprintf("%s: %s", cat, format(v))
			if len(series) > 1 {
				tip = fmt.Sprintf("%s, %s: %s", cat, series[si], format(v))
			}
			d.add(`<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`,
				gx+float64(si)*barW, d.y0+d.hh-h, math.Max(barW-2, 1), h, color(si), html.EscapeString(tip))
		}
		var catTitle string
		if ci < len(catTitles) {
			catTitle = catTitles[ci]
		}
		d.categoryLabel(gx+groupW*0.4, cat, catTitle)
	}
	if len(series) > 1 {
		d.legend(series)
	}
	return d.finish(id, title)
}

// xySeries is one line of a line plot.
type xySeries struct {
	name string
	x, y []float64
}

// linePlot draws each series as a polyline with point markers.
func linePlot(id, title, xName, yName string, series []xySeries) string {
	return linePlotWith(id, title, xName, yName, series, lineOptions{})
}

// lineOptions adjust a line plot's axes.
type lineOptions struct {
	// yTicks, when set, fix the y range to [first, last] (EM: 0 to 1), with
	// yFormat labelling them.
	yTicks  []float64
	yFormat func(float64) string
	// integerX keeps x ticks on whole numbers (rounds, not fractions of one).
	integerX bool
}

// tickLabel prints a tick value without float noise (0.30000000000000004).
func tickLabel(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

func linePlotWith(id, title, xName, yName string, series []xySeries, o lineOptions) string {
	d := newSVG(len(series), 1)
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i := range s.x {
			xlo, xhi = math.Min(xlo, s.x[i]), math.Max(xhi, s.x[i])
			ylo, yhi = math.Min(ylo, s.y[i]), math.Max(yhi, s.y[i])
		}
	}
	var yt []float64
	yFormat := tickLabel
	if len(o.yTicks) > 0 {
		yt, ylo, yhi = o.yTicks, o.yTicks[0], o.yTicks[len(o.yTicks)-1]
		if o.yFormat != nil {
			yFormat = o.yFormat
		}
	} else {
		yt, ylo, yhi = niceTicks(math.Min(ylo, 0), yhi, 5)
	}
	xt, xlo, xhi := niceTicks(xlo, xhi, 8)
	if o.integerX {
		xlo, xhi = math.Floor(xlo), math.Ceil(xhi)
		if xhi-xlo < 1 {
			xhi = xlo + 1
		}
		xt = xt[:0]
		step := math.Max(1, math.Ceil((xhi-xlo)/8))
		for t := math.Floor(xlo); t <= xhi; t += step {
			xt = append(xt, t)
		}
	}
	d.yAxis(yt, ylo, yhi, yFormat, yName)
	xOf := func(v float64) float64 { return d.x0 + (v-xlo)/(xhi-xlo)*d.w }
	for _, t := range xt {
		d.text(xOf(t), d.y0+d.hh+16, "middle", "tick", tickLabel(t), "")
	}
	d.text(d.x0+d.w/2, d.y0+d.hh+40, "middle", "axisname", xName, "")
	for si, s := range series {
		var pts strings.Builder
		for i := range s.x {
			fmt.Fprintf(&pts, "%.1f,%.1f ", xOf(s.x[i]), d.yOf(s.y[i], ylo, yhi))
		}
		d.add(`<polyline class="line" fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`,
			color(si), strings.TrimSpace(pts.String()), html.EscapeString(s.name))
		// Markers only while they do not crowd the line.
		if len(s.x) <= 60 {
			for i := range s.x {
				d.add(`<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s %s %g: %.4g</title></circle>`,
					xOf(s.x[i]), d.yOf(s.y[i], ylo, yhi), color(si), html.EscapeString(s.name), html.EscapeString(xName), s.x[i], s.y[i])
			}
		}
	}
	d.legend(names(series))
	return d.finish(id, title)
}

func names(ss []xySeries) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.name
	}
	return out
}
