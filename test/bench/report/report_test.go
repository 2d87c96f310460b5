package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const addDelOutput = `goos: linux
BenchmarkPodNetworkAddDel-2   	      40	  60000000 ns/op	  30.0 nicpool-ms	  40.0 reference-ms	0.75 ratio	  29.0 nicpool-p50-ms	  50.0 nicpool-p99-ms	  39.0 reference-p50-ms	  60.0 reference-p99-ms
BenchmarkPodNetworkAddDel-2   	      40	  60000000 ns/op	  20.0 nicpool-ms	  50.0 reference-ms	0.40 ratio	  19.0 nicpool-p50-ms	  40.0 nicpool-p99-ms	  49.0 reference-p50-ms	  70.0 reference-p99-ms
BenchmarkPodNetworkAddDel-2   	      40	  60000000 ns/op	  25.0 nicpool-ms	  45.0 reference-ms	0.55 ratio	  24.0 nicpool-p50-ms	  45.0 nicpool-p99-ms	  44.0 reference-p50-ms	  65.0 reference-p99-ms
BenchmarkPodNetworkBurst-2    	       2	 100 ns/op	  1.0 nicpool-ms	  2.0 reference-ms
PASS
`

func TestFiguresFromGoBench(t *testing.T) {
	runs, err := parseBench(strings.NewReader(addDelOutput), "PodNetworkAddDel")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("parsed %d runs, want 3 (only PodNetworkAddDel's)", len(runs))
	}
	figs, err := figures("PodNetworkAddDel", runs)
	if err != nil {
		t.Fatal(err)
	}
	mean := figs[0]
	// Medians: value 25, reference 45; ratio the median of 0.75, 0.4, 0.5556.
	if mean.Value != 25 || mean.Reference != 45 || mean.Ratio < 0.555 || mean.Ratio > 0.556 {
		t.Fatalf("mean figure = %+v, want value 25, reference 45, ratio 0.5556", mean)
	}
	if mean.Target != "<= 0.5x" || mean.Met {
		t.Fatalf("mean figure target %q met %v, want \"<= 0.5x\" not met", mean.Target, mean.Met)
	}
	if figs[1].Target != "" || !figs[1].Met {
		t.Fatalf("p50 figure %+v should be reported without a target", figs[1])
	}
	if _, err := parseBench(strings.NewReader(addDelOutput), "PodDatapath"); err == nil {
		t.Fatal("no error for a benchmark without results")
	}
	if _, err := figures("PodNetworkAddDel", []benchRun{{"nicpool-ms": 1}}); err == nil {
		t.Fatal("no error for a run without its reference metric")
	}
}

func TestWriteCountLimitHoldsInEveryRun(t *testing.T) {
	runs := []benchRun{
		{"wall-ms": 8000, "nic-full-ms": 3000, "bound-ms": 1000, "put-latency-ms": 1000, "max-nic-writes": 2, "pod-p50-ms": 1, "pod-p99-ms": 2},
		{"wall-ms": 9000, "nic-full-ms": 3000, "bound-ms": 1000, "put-latency-ms": 1000, "max-nic-writes": 3, "pod-p50-ms": 1, "pod-p99-ms": 2},
		{"wall-ms": 7000, "nic-full-ms": 3000, "bound-ms": 1000, "put-latency-ms": 1000, "max-nic-writes": 2, "pod-p50-ms": 1, "pod-p99-ms": 2},
	}
	figs, err := figures("PodNetworkColdBurst", runs)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range figs {
		if strings.Contains(f.Name, "NIC writes") {
			if f.Value != 3 || f.Met || f.Target != "<= 2 writes" {
				t.Fatalf("writes figure = %+v, want the worst run (3) and the target missed", f)
			}
			return
		}
	}
	t.Fatal("no NIC writes figure")
}

func TestTableReadsEveryReport(t *testing.T) {
	dir := t.TempDir()
	ok := Report{Machine: "m1", Figures: []Figure{{Name: "fast", Value: 1, Unit: "ms", ReferenceName: "ref", Reference: 4, Ratio: 0.25, Target: "<= 0.5x", Met: true}}}
	bad := Report{Machine: "m1", Figures: []Figure{{Name: "slow", Value: 3, Unit: "ms", ReferenceName: "ref", Reference: 4, Ratio: 0.75, Target: "<= 0.5x", Met: false}}}
	for name, r := range map[string]Report{"a": ok, "b": bad} {
		if err := writeReport(filepath.Join(dir, name+".json"), r); err != nil {
			t.Fatal(err)
		}
	}
	// A figure reported as is, without reference or target (perfop's operator reports).
	asIs := `{"figures":[{"name":"peak RSS","value":75.9,"unit":"MiB"}],"machine":"m2"}`
	if err := os.WriteFile(filepath.Join(dir, "c.json"), []byte(asIs), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.json"), []byte(`{"unrelated": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	names, reports, err := readReports(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	missed, err := printTable(&out, names, reports)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "peak RSS") || strings.Contains(out.String(), "0.00x") {
		t.Errorf("a figure without reference should show none:\n%s", out.String())
	}
	if missed != 1 {
		t.Errorf("missed = %d, want 1", missed)
	}
	for _, want := range []string{"fast", "0.25x", "slow", "0.75x", "NO", "machine (a, b): m1", "machine (c): m2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if err := writeReport(filepath.Join(dir, "nan.json"), Report{Figures: []Figure{{Name: "x", Ratio: 0 / zero()}}}); err == nil {
		t.Error("wrote a NaN figure")
	}
}

func zero() float64 { return 0 }

func TestCDFIsWellFormedSVG(t *testing.T) {
	var fast, slow []float64
	for i := range 1000 {
		fast = append(fast, float64(i%100))
		slow = append(slow, float64(i%100)*3)
	}
	var out bytes.Buffer
	if err := writeCDF(&out, "burst <nicpool & ref>", "ms", []Series{{"nicpool", "red", fast}, {"ptp+host-local", "blue", slow}}); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(out.Bytes()))
	polylines, texts := 0, []string{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, out.String())
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "polyline" {
				polylines++
				for _, a := range el.Attr {
					// Thinned to at most maxPointsPerSeries steps of two points.
					if a.Name.Local == "points" && len(strings.Fields(a.Value)) > 2*maxPointsPerSeries+1 {
						t.Errorf("polyline has %d points, want at most %d", len(strings.Fields(a.Value)), 2*maxPointsPerSeries+1)
					}
				}
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	if polylines != 2 {
		t.Errorf("%d polylines, want one per series", polylines)
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"burst <nicpool & ref>", "nicpool: p50 49, p99 98", "ptp+host-local: p50 147, p99 294"} {
		if !strings.Contains(all, want) {
			t.Errorf("picture text lacks %q: %s", want, all)
		}
	}
	if err := writeCDF(io.Discard, "empty", "ms", []Series{{"x", "red", nil}}); err == nil {
		t.Error("drew a series without samples")
	}
}
