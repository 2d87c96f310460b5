// Package plot draws step charts as self-contained SVG: many series (one per
// node, say) as thin lines, vertical reference marks, axes with round ticks. It
// needs nothing but the standard library, so `make bench` can draw its pictures
// on any machine.
package plot

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// Point is one sample: the value Y from time X on.
type Point struct{ X, Y float64 }

// Series is one line. Points must be sorted by X; the line holds each Y until
// the next point (a step chart), which is how a count that changes in jumps
// (IPs on a NIC) looks.
type Series struct {
	Name   string
	Points []Point
}

// Mark is a vertical reference line at X, labelled (a latency, a target).
type Mark struct {
	X     float64
	Label string
	Color string
}

// Chart is a step chart.
type Chart struct {
	Title, Subtitle, XLabel, YLabel string
	Series                          []Series
	Marks                           []Mark
	// Width and Height are the picture's size in pixels (default 900 x 520).
	Width, Height int
	// XMax and YMax fix the axes' ends; 0 fits them to the data.
	XMax, YMax float64
}

const (
	left, right, top, bottom = 70.0, 30.0, 60.0, 55.0
)

// SVG renders the chart.
func (c Chart) SVG() []byte {
	w, h := float64(c.Width), float64(c.Height)
	if w <= 0 {
		w = 900
	}
	if h <= 0 {
		h = 520
	}
	xmax, ymax := c.XMax, c.YMax
	for _, s := range c.Series {
		for _, p := range s.Points {
			if c.XMax == 0 {
				xmax = math.Max(xmax, p.X)
			}
			if c.YMax == 0 {
				ymax = math.Max(ymax, p.Y)
			}
		}
	}
	for _, m := range c.Marks {
		if c.XMax == 0 {
			xmax = math.Max(xmax, m.X)
		}
	}
	xstep, ystep := niceStep(xmax), niceStep(ymax)
	xmax, ymax = roundUp(xmax, xstep), roundUp(ymax, ystep)
	pw, ph := w-left-right, h-top-bottom
	sx := func(x float64) float64 { return left + x/xmax*pw }
	sy := func(y float64) float64 { return top + ph - y/ymax*ph }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%g" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", left, esc(c.Title))
	if c.Subtitle != "" {
		fmt.Fprintf(&b, `<text x="%g" y="40" fill="#555">%s</text>`+"\n", left, esc(c.Subtitle))
	}
	// Grid and ticks.
	for x := 0.0; x <= xmax+xstep/2; x += xstep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, sx(x), top, sx(x), top+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", sx(x), top+ph+16, num(x))
	}
	for y := 0.0; y <= ymax+ystep/2; y += ystep {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, left, sy(y), left+pw, sy(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, sy(y)+4, num(y))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", left+pw/2, h-12, esc(c.XLabel))
	fmt.Fprintf(&b, `<text x="16" y="%g" text-anchor="middle" transform="rotate(-90 16 %g)">%s</text>`+"\n", top+ph/2, top+ph/2, esc(c.YLabel))
	// Series: thin, translucent, hue spread over the series so neighbours differ.
	for i, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		var d bytes.Buffer
		fmt.Fprintf(&d, "M%.1f %.1f", sx(s.Points[0].X), sy(s.Points[0].Y))
		for j := 1; j < len(s.Points); j++ {
			fmt.Fprintf(&d, "H%.1fV%.1f", sx(s.Points[j].X), sy(s.Points[j].Y))
		}
		fmt.Fprintf(&d, "H%.1f", sx(xmax))
		hue := 360 * float64(i) / float64(max(len(c.Series), 1))
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="hsl(%.0f,70%%,42%%)" stroke-opacity="0.55" stroke-width="1.2"><title>%s</title></path>`+"\n",
			d.String(), hue, esc(s.Name))
	}
	// Marks, labelled at the top, staggered so neighbours do not overlap.
	for i, m := range c.Marks {
		color := m.Color
		if color == "" {
			color = "#c00"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>`,
			sx(m.X), top, sx(m.X), top+ph, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" fill="%s">%s</text>`+"\n", sx(m.X)+4, top+14+14*float64(i%3), color, esc(m.Label))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceStep picks a tick step of 1, 2 or 5 times a power of ten giving 4 to 10 ticks.
func niceStep(span float64) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / 6
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func roundUp(v, step float64) float64 {
	if v <= 0 {
		return step
	}
	return math.Ceil(v/step-1e-9) * step
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func esc(s string) string { return html.EscapeString(s) }
