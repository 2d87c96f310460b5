package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
)

// Series is one line of a chart: a name and its samples.
type Series struct {
	Name   string
	Color  string // an SVG colour
	Values []float64
}

// Chart layout in SVG user units.
const (
	chartW, chartH             = 760, 460
	marginL, marginR           = 70, 30
	marginT, marginB           = 50, 60
	plotW, plotH               = chartW - marginL - marginR, chartH - marginT - marginB
	maxPointsPerSeries         = 600
	xTicksWanted               = 8
	legendX, legendY, legendDY = marginL + plotW - 300, marginT + plotH - 20*2 - 16, 20
)

// writeCDF draws the cumulative distribution of each series (the share of
// samples at or below x) as a self-contained SVG: axes, grid, one step line
// per series and a legend with each series' p50 and p99.
func writeCDF(w io.Writer, title, xLabel string, series []Series) error {
	xMax := 0.0
	for _, s := range series {
		if len(s.Values) == 0 {
			return fmt.Errorf("draw %q: series %q has no samples", title, s.Name)
		}
		for _, v := range s.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return fmt.Errorf("draw %q: series %q has a sample %v that is not a finite non-negative number", title, s.Name, v)
			}
		}
		xMax = max(xMax, slices.Max(s.Values))
	}
	step := niceStep(xMax / xTicksWanted)
	xMax = math.Max(step, math.Ceil(xMax/step)*step)
	px := func(x float64) float64 { return marginL + x/xMax*plotW }
	py := func(y float64) float64 { return marginT + (1-y)*plotH }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", marginL, esc(title))
	for x := 0.0; x <= xMax+step/2; x += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", px(x), marginT, px(x), marginT+plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(x), marginT+plotH+16, esc(fmt.Sprintf("%g", roundTo(x, step))))
	}
	for _, y := range []float64{0, 0.25, 0.5, 0.75, 0.9, 1} {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", marginL, py(y), marginL+plotW, py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%g%%</text>`+"\n", marginL-6, py(y)+4, y*100)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", marginL, marginT, plotW, plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", marginL+plotW/2, chartH-16, esc(xLabel))
	fmt.Fprintf(&b, `<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">share of pods at or below</text>`+"\n", marginT+plotH/2)
	for i, s := range series {
		v := slices.Clone(s.Values)
		slices.Sort(v)
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", esc(s.Color), cdfPoints(v, px, py))
		y := legendY + i*legendDY
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", legendX, y-4, legendX+24, y-4, esc(s.Color))
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", legendX+30, y,
			esc(fmt.Sprintf("%s: p50 %.0f, p99 %.0f (%d samples)", s.Name, quantile(v, 0.5), quantile(v, 0.99), len(v))))
	}
	b.WriteString("</svg>\n")
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write %q: %w", title, err)
	}
	return nil
}

// cdfPoints is the step line of sorted v: from (v[i], i/n) up to
// (v[i], (i+1)/n), thinned to at most maxPointsPerSeries steps.
func cdfPoints(v []float64, px, py func(float64) float64) string {
	n := len(v)
	stride := max(1, (n+maxPointsPerSeries-1)/maxPointsPerSeries)
	var b bytes.Buffer
	fmt.Fprintf(&b, "%.1f,%.1f", px(0), py(0))
	prev := 0.0
	for i := stride - 1; ; i += stride {
		i = min(i, n-1)
		y := float64(i+1) / float64(n)
		fmt.Fprintf(&b, " %.1f,%.1f %.1f,%.1f", px(v[i]), py(prev), px(v[i]), py(y))
		prev = y
		if i == n-1 {
			break
		}
	}
	return b.String()
}

// quantile of sorted v, nearest rank below.
func quantile(v []float64, q float64) float64 { return v[int(q*float64(len(v)-1))] }

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// roundTo removes float noise from a multiple of step (0.30000000000000004).
func roundTo(x, step float64) float64 {
	digits := math.Max(0, -math.Floor(math.Log10(step)))
	p := math.Pow(10, digits)
	return math.Round(x*p) / p
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
