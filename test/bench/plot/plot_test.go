package plot

import (
	"encoding/xml"
	"strings"
	"testing"
)

func TestNiceStep(t *testing.T) {
	tests := []struct{ span, want float64 }{
		{0, 1}, {1, 0.2}, {6, 1}, {10, 2}, {250, 50}, {3.2, 1}, {16000, 5000},
	}
	for _, tt := range tests {
		if got := niceStep(tt.span); got != tt.want {
			t.Errorf("niceStep(%g) = %g, want %g", tt.span, got, tt.want)
		}
	}
}

// The picture is well-formed XML with one path per series, its marks and its
// escaped title.
func TestSVGWellFormed(t *testing.T) {
	c := Chart{
		Title: "a < b & c", XLabel: "s", YLabel: "IPs",
		Series: []Series{{Name: "n0", Points: []Point{{0, 0}, {1.5, 100}, {2.1, 250}}}, {Name: "n1", Points: []Point{{0, 0}, {2.4, 250}}}, {Name: "empty"}},
		Marks:  []Mark{{X: 2, Label: "PUT latency"}, {X: 3, Label: "target"}},
	}
	out := c.SVG()
	dec := xml.NewDecoder(strings.NewReader(string(out)))
	paths, lines := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("svg is not well-formed xml: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "path":
				paths++
			case "line":
				lines++
			}
		}
	}
	if paths != 2 {
		t.Errorf("%d paths, want 2 (the empty series draws none)", paths)
	}
	if !strings.Contains(string(out), "a &lt; b &amp; c") || !strings.Contains(string(out), "PUT latency") {
		t.Errorf("title or mark label missing or unescaped")
	}
}
