// Package benchjson writes a benchmark's figures as bin/bench/<name>.json, the
// file test/bench/run.sh turns into its table (DEVELOPERS.md, "Benchmarks"):
//
//	{"figures":[{"name":"...","value":N,"unit":"s","reference_name":"...",
//	  "reference":N,"ratio":N,"target":"<= 1.5x","met":true}],"machine":"..."}
package benchjson

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Figure is one measured value, with the reference it is compared against in
// the same run (when it has one) and the target the ratio must meet.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// ReferenceName and Reference are what Value is measured against; Ratio is
	// Value / Reference. All three are omitted for a figure reported as is.
	ReferenceName string  `json:"reference_name,omitempty"`
	Reference     float64 `json:"reference,omitempty"`
	Ratio         float64 `json:"ratio,omitempty"`
	// Target is what the figure must meet ("<= 1.5x", "<= 150 MiB"); Met says
	// whether it did. A figure without a target omits both.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
}

// Report is one benchmark's file.
type Report struct {
	Figures []Figure `json:"figures"`
	Machine string   `json:"machine"`
}

// Ratio returns a figure of value against reference with a "<= target x" goal.
func Ratio(name string, value float64, unit, refName string, ref, target float64) Figure {
	r := 0.0
	if ref != 0 {
		r = value / ref
	}
	met := ref != 0 && r <= target
	return Figure{Name: name, Value: value, Unit: unit, ReferenceName: refName, Reference: ref, Ratio: r,
		Target: fmt.Sprintf("<= %gx", target), Met: &met}
}

// AtMost returns a figure with an absolute "<= limit unit" goal.
func AtMost(name string, value float64, unit string, limit float64) Figure {
	met := value <= limit
	return Figure{Name: name, Value: value, Unit: unit, Target: fmt.Sprintf("<= %g %s", limit, unit), Met: &met}
}

// Plain returns a figure reported without a target.
func Plain(name string, value float64, unit string) Figure {
	return Figure{Name: name, Value: value, Unit: unit}
}

// Write writes figures to dir/<name>.json, creating dir.
func Write(dir, name string, figures []Figure) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create bench output directory %s: %w", dir, err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // names and targets hold "->" and "<="
	enc.SetIndent("", "  ")
	if err := enc.Encode(Report{Figures: figures, Machine: Machine()}); err != nil {
		return fmt.Errorf("encode bench report %s: %w", name, err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write bench report %s: %w", path, err)
	}
	return nil
}

// Machine describes where the figures come from: CPU model, cores, OS/arch.
func Machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}
