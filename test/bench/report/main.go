// Command report turns nicpool's benchmark results into the figures `make
// bench` prints (test/bench/run.sh runs it):
//
//	report gobench -bench NAME -in FILE.txt -out FILE.json   go test -bench output -> figures
//	report cdf -in FILE.jsonl -out FILE.svg [-title T]       latency samples -> CDF picture
//	report table [-dir bin/bench]                            every *.json -> one table
//
// Every benchmark writes its figures as {"figures":[{"name", "value",
// "unit", "reference_name", "reference", "ratio", "target", "met"}],
// "machine"} (the operator benchmarks too); table prints them all with
// their references and ratios and exits 3 when a target was missed.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		var m missedError
		if errors.As(err, &m) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

// missedError says targets were missed; the table was printed.
type missedError int

func (m missedError) Error() string { return fmt.Sprintf("%d targets not met", int(m)) }

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: report gobench|cdf|table [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	switch args[0] {
	case "gobench":
		name := fs.String("bench", "", "benchmark name without the Benchmark prefix")
		in := fs.String("in", "", "go test -bench output")
		out := fs.String("out", "", "report file to write")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return gobench(*name, *in, *out)
	case "cdf":
		in := fs.String("in", "", "latency samples, one JSON object {\"series\":..., \"ms\":[...]} a line")
		out := fs.String("out", "", "SVG file to write")
		title := fs.String("title", "Latency distribution", "title of the picture")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return cdf(*in, *out, *title)
	case "table":
		dir := fs.String("dir", "bin/bench", "directory of the *.json reports")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		names, reports, err := readReports(*dir)
		if err != nil {
			return err
		}
		if len(reports) == 0 {
			return fmt.Errorf("no reports in %s", *dir)
		}
		missed, err := printTable(os.Stdout, names, reports)
		if err != nil {
			return err
		}
		if missed > 0 {
			return missedError(missed)
		}
		return nil
	default:
		return fmt.Errorf("unknown command %q: want gobench, cdf or table", args[0])
	}
}

func gobench(name, in, out string) error {
	if name == "" || in == "" || out == "" {
		return errors.New("gobench needs -bench, -in and -out")
	}
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("open benchmark output: %w", err)
	}
	defer func() { _ = f.Close() }()
	runs, err := parseBench(f, name)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	figs, err := figures(name, runs)
	if err != nil {
		return err
	}
	return writeReport(out, Report{Figures: figs, Machine: machine()})
}

// sample is one line of a latency file: some samples of one series.
type sample struct {
	Series string    `json:"series"`
	MS     []float64 `json:"ms"`
}

// seriesColors colours the series in order of first appearance.
var seriesColors = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd"}

func cdf(in, out, title string) error {
	if in == "" || out == "" {
		return errors.New("cdf needs -in and -out")
	}
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("open samples: %w", err)
	}
	defer func() { _ = f.Close() }()
	var series []Series
	index := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var s sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return fmt.Errorf("%s line %d: %w", in, line, err)
		}
		i, ok := index[s.Series]
		if !ok {
			i = len(series)
			index[s.Series] = i
			series = append(series, Series{Name: s.Series, Color: seriesColors[i%len(seriesColors)]})
		}
		series[i].Values = append(series[i].Values, s.MS...)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", in, err)
	}
	if len(series) == 0 {
		return fmt.Errorf("%s holds no samples", in)
	}
	o, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create picture: %w", err)
	}
	if err := writeCDF(o, title, "per-pod ADD latency (ms)", series); err != nil {
		_ = o.Close()
		return err
	}
	if err := o.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
