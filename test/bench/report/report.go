package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Figure is one measured figure beside its reference, as every benchmark of
// `make bench` writes it (bin/bench/<name>.json).
type Figure struct {
	// Name says what was measured.
	Name string `json:"name"`
	// Value is nicpool's figure, in Unit.
	Value float64 `json:"value"`
	// Unit is Value's and Reference's unit.
	Unit string `json:"unit"`
	// ReferenceName says what Reference is (measured in the same run); a
	// figure reported as is omits it, Reference and Ratio.
	ReferenceName string `json:"reference_name"`
	// Reference is the reference's figure, in Unit.
	Reference float64 `json:"reference"`
	// Ratio is Value against Reference.
	Ratio float64 `json:"ratio"`
	// Target is the goal, e.g. "<= 0.5x"; empty for a figure only reported.
	Target string `json:"target"`
	// Met reports whether Target is met (true when there is none).
	Met bool `json:"met"`
}

// Report is one benchmark's figures and the machine they were measured on.
type Report struct {
	Figures []Figure `json:"figures"`
	Machine string   `json:"machine"`
}

// writeReport writes r as JSON to path (0644: results, not secrets).
func writeReport(path string, r Report) error {
	for _, f := range r.Figures {
		for _, v := range []float64{f.Value, f.Reference, f.Ratio} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("write %s: figure %q is not a finite number", path, f.Name)
			}
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readReports reads every *.json report in dir, sorted by file name.
func readReports(dir string) (names []string, reports []Report, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, nil, fmt.Errorf("list reports in %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("read report: %w", err)
		}
		var r Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, nil, fmt.Errorf("parse report %s: %w", f, err)
		}
		if len(r.Figures) == 0 {
			continue // not a report of the contract (another JSON file)
		}
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
		reports = append(reports, r)
	}
	return names, reports, nil
}

// printTable prints every figure of every report in one table, then the
// machines the reports came from. It returns how many targets were missed.
func printTable(w io.Writer, names []string, reports []Report) (missed int, err error) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCH\tFIGURE\tNICPOOL\tREFERENCE\t\tRATIO\tTARGET\tMET")
	for i, r := range reports {
		for _, f := range r.Figures {
			target, met := f.Target, "yes"
			switch {
			case target == "":
				target, met = "-", "-"
			case !f.Met:
				met = "NO"
				missed++
			}
			refName, ref, ratio := f.ReferenceName, number(f.Reference, f.Unit), fmt.Sprintf("%.2fx", f.Ratio)
			if refName == "" {
				// A figure reported as is (the contract omits its reference).
				refName, ref, ratio = "-", "", "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", names[i], f.Name,
				number(f.Value, f.Unit), refName, ref, ratio, target, met)
		}
	}
	if err := tw.Flush(); err != nil {
		return 0, fmt.Errorf("print table: %w", err)
	}
	machines := map[string][]string{}
	var order []string
	for i, r := range reports {
		if _, ok := machines[r.Machine]; !ok {
			order = append(order, r.Machine)
		}
		machines[r.Machine] = append(machines[r.Machine], names[i])
	}
	for _, m := range order {
		if m == "" {
			m = "(not stated)"
		}
		fmt.Fprintf(w, "machine (%s): %s\n", strings.Join(machines[m], ", "), m)
	}
	return missed, nil
}

// number formats v with unit, with few significant digits.
func number(v float64, unit string) string {
	var s string
	switch a := math.Abs(v); {
	case a >= 100 || a == math.Trunc(a):
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	if unit == "" {
		return s
	}
	return s + " " + unit
}
