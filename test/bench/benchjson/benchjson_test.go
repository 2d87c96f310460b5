package benchjson

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	figs := []Figure{
		Ratio("converge", 2.6, "s", "PUT latency", 2, 1.5),
		Ratio("slow", 4, "s", "PUT latency", 2, 1.5),
		AtMost("rss", 90, "MiB", 150),
		Plain("reads/node", 2, "reads"),
	}
	if err := Write(dir, "x", figs); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "x.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Figures []map[string]any `json:"figures"`
		Machine string           `json:"machine"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(got.Figures) != 4 || got.Machine == "" {
		t.Fatalf("decoded %d figures, machine %q", len(got.Figures), got.Machine)
	}
	want := []struct {
		met    any
		target any
		ratio  any
	}{{true, "<= 1.5x", 1.3}, {false, "<= 1.5x", 2.0}, {true, "<= 150 MiB", nil}, {nil, nil, nil}}
	for i, w := range want {
		f := got.Figures[i]
		if f["met"] != w.met || f["target"] != w.target || (w.ratio != nil && f["ratio"] != w.ratio) {
			t.Errorf("figure %d = %v, want met %v target %v ratio %v", i, f, w.met, w.target, w.ratio)
		}
	}
}
