// Package operator benchmarks nicpool-operator, run as its own process,
// against the simulated Azure VNet (armsim, with a realistic NIC write latency
// and ARM's per-subscription request buckets) and a real API server:
//
//   - 64 nodes scaled from 0 to 250 IPs each: convergence against the PUT
//     latency (target <= 1.5x) and NIC writes per node (target 1);
//   - the VNet limit, 500 nodes x 32 IPs (16,000) from zero: convergence,
//     writes and reads per node, and the operator's peak RSS (<= 150 MiB).
//
// Each writes bin/bench/<name>.json (test/bench/benchjson) and draws the IPs
// on each node's NIC over time as bin/bench/<name>.svg. Run it with
// test/bench/operator/run.sh, or
// go test ./test/bench/operator -run '^$' -bench . -benchtime 1x.
package operator

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/test/bench/benchjson"
	"github.com/nicpool/nicpool/test/bench/plot"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	sub        = "00000000-0000-0000-0000-0000000be7c4"
	rg         = "rg-bench"
	putLatency = 2 * time.Second
	// target is the convergence goal of the 64-node scale-up, in PUT latencies.
	target = 1.5
	// rssLimit is the operator's peak RSS goal at the VNet limit, in MiB.
	rssLimit = 150
)

// scale is one scale-up: nodes pools from 0 to perNode IPs each.
type scale struct {
	name          string
	nodes         int
	perNode       int32
	writes        int
	reads         map[armsim.Op]int
	throttled     int
	converge      time.Duration
	reached       []float64
	peakRSS       uint64
	cpu           time.Duration
	timeline      *timeline
	names         []string
	requestsTaken time.Duration
}

// BenchmarkScale64Nodes0To250 scales 64 nodes from 0 to 250 IPs each.
func BenchmarkScale64Nodes0To250(b *testing.B) {
	for range b.N {
		r := runScale(b, "operator", 64, 250)
		b.ReportMetric(float64(r.writes)/float64(r.nodes), "writes/node")
		b.ReportMetric(float64(r.totalReads())/float64(r.nodes), "reads/node")
		b.ReportMetric(r.converge.Seconds(), "s-to-converge")
		b.ReportMetric(r.converge.Seconds()/putLatency.Seconds(), "converge/put-latency")
		b.ReportMetric(float64(r.peakRSS)/(1<<20), "peak-rss-MiB")
		r.report(b, []benchjson.Figure{
			benchjson.Ratio("operator 64 nodes 0 -> 250 IPs: converged", r.converge.Seconds(), "s", "ARM NIC PUT latency", putLatency.Seconds(), target),
			benchjson.AtMost("operator 64 nodes 0 -> 250 IPs: NIC writes per node", float64(r.writes)/float64(r.nodes), "writes", 1),
			benchjson.Plain("operator 64 nodes 0 -> 250 IPs: ARM reads per node", float64(r.totalReads())/float64(r.nodes), "reads"),
			benchjson.Plain("operator 64 nodes 0 -> 250 IPs: operator CPU per node", r.cpuMsPerNode(), "ms"),
			benchjson.Plain("operator 64 nodes 0 -> 250 IPs: peak RSS", float64(r.peakRSS)/(1<<20), "MiB"),
		})
	}
}

// BenchmarkVNetLimit500Nodes scales 500 nodes from 0 to 32 IPs each: 16,000,
// the VNet limit.
func BenchmarkVNetLimit500Nodes(b *testing.B) {
	for range b.N {
		r := runScale(b, "operator-500", 500, 32)
		b.ReportMetric(float64(r.writes)/float64(r.nodes), "writes/node")
		b.ReportMetric(float64(r.totalReads())/float64(r.nodes), "reads/node")
		b.ReportMetric(r.converge.Seconds(), "s-to-converge")
		b.ReportMetric(float64(r.peakRSS)/(1<<20), "peak-rss-MiB")
		r.report(b, []benchjson.Figure{
			benchjson.Plain("operator 500 nodes 0 -> 32 IPs (16,000): converged", r.converge.Seconds(), "s"),
			benchjson.Plain("operator 500 nodes 0 -> 32 IPs: NIC writes per node", float64(r.writes)/float64(r.nodes), "writes"),
			benchjson.Plain("operator 500 nodes 0 -> 32 IPs: ARM reads per node", float64(r.totalReads())/float64(r.nodes), "reads"),
			benchjson.Plain("operator 500 nodes 0 -> 32 IPs: operator CPU per node", r.cpuMsPerNode(), "ms"),
			benchjson.AtMost("operator 500 nodes 0 -> 32 IPs: operator peak RSS", float64(r.peakRSS)/(1<<20), "MiB", rssLimit),
		})
	}
}

// runScale starts armsim and the operator process, creates the nodes, waits
// until every pool knows its NIC, then sets every request at once and times
// until every pool publishes them all.
func runScale(b *testing.B, name string, nodes int, perNode int32) *scale {
	b.Helper()
	dir := b.TempDir()
	bin := buildOperator(b, dir)
	topo := armsim.GenerateTopology(sub, rg, "10.64.0.0/16", "10.64.0.0/16", nodes)
	srv, _, _ := armsimtest.Start(b, armsim.Options{Topology: topo, PutLatency: putLatency, Logf: func(string, ...any) {}})
	out := outDir()
	tl := watchPools(b)
	defer tl.cancel()
	op := startOperatorProcess(b, bin, srv, dir, filepath.Join(out, name+".log"))
	defer op.stop()
	names := createNodes(b, name, nodes)
	defer deleteNodes(names)
	waitUntil(b, 5*time.Minute, "every pool knows its NIC", func() bool {
		return tl.count(names, func(_ int, identified bool) bool { return identified }) == nodes
	})
	before := srv.Stats()
	cpu0, err := op.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	tl.begin()
	setRequests(b, names, perNode)
	r := &scale{name: name, nodes: nodes, perNode: perNode, timeline: tl, names: names, requestsTaken: time.Since(tl.start)}
	waitUntil(b, 15*time.Minute, fmt.Sprintf("every pool has %d IPs", perNode), func() bool {
		return tl.count(names, func(n int, _ bool) bool { return n >= int(perNode) }) == nodes
	})
	r.converge = time.Since(tl.start)
	cpu1, err := op.cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	r.cpu = cpu1 - cpu0
	if r.peakRSS, err = op.peakRSS(); err != nil {
		b.Fatal(err)
	}
	after := srv.Stats()
	r.reads = map[armsim.Op]int{}
	for id, n := range after.PutsByNIC {
		r.writes += n - before.PutsByNIC[id]
	}
	for op, codes := range after.Calls {
		for code, n := range codes {
			d := n - before.Calls[op][code]
			if code == 429 {
				r.throttled += d
			}
			if op != armsim.OpPutNIC {
				r.reads[op] += d
			}
		}
	}
	for _, t := range tl.reached(int(perNode)) {
		r.reached = append(r.reached, t)
	}
	slices.Sort(r.reached)
	b.Logf("%s: %d nodes 0 -> %d IPs: converged in %s (%.2fx the %s PUT latency; requests written in %s); %d NIC writes (%.2f per node), ARM reads %v (%.2f per node, client read budget %v/s), %d throttled; pools done at p25 %.2fs, p50 %.2fs, p75 %.2fs, last %.2fs; operator CPU %s (%.1f ms per node), peak RSS %.1f MiB",
		name, nodes, perNode, r.converge.Round(time.Millisecond), r.converge.Seconds()/putLatency.Seconds(), putLatency, r.requestsTaken.Round(time.Millisecond),
		r.writes, float64(r.writes)/float64(nodes), r.reads, float64(r.totalReads())/float64(nodes), azure.DefaultReadQPS, r.throttled,
		r.reached[len(r.reached)/4], r.reached[len(r.reached)/2], r.reached[3*len(r.reached)/4], r.reached[len(r.reached)-1],
		r.cpu, r.cpuMsPerNode(), float64(r.peakRSS)/(1<<20))
	return r
}

func (r *scale) cpuMsPerNode() float64 {
	return float64(r.cpu.Microseconds()) / 1000 / float64(r.nodes)
}

func (r *scale) totalReads() int {
	n := 0
	for _, v := range r.reads {
		n += v
	}
	return n
}

// report writes the figures and the picture.
func (r *scale) report(b *testing.B, figures []benchjson.Figure) {
	b.Helper()
	out := outDir()
	if err := benchjson.Write(out, r.name, figures); err != nil {
		b.Fatal(err)
	}
	svg := filepath.Join(out, r.name+".svg")
	if err := os.WriteFile(svg, r.chart().SVG(), 0o644); err != nil {
		b.Fatalf("write %s: %v", svg, err)
	}
	b.Logf("wrote %s and %s", filepath.Join(out, r.name+".json"), svg)
}

// chart draws each node's IPs over time, with the PUT latency, the target and
// the convergence marked.
func (r *scale) chart() plot.Chart {
	r.timeline.mu.Lock()
	defer r.timeline.mu.Unlock()
	c := plot.Chart{
		Title: fmt.Sprintf("nicpool-operator: %d nodes, 0 -> %d IPs each, converged in %.2f s (%.2fx the ARM PUT latency)",
			r.nodes, r.perNode, r.converge.Seconds(), r.converge.Seconds()/putLatency.Seconds()),
		Subtitle: fmt.Sprintf("IPs published on each node's NIC (one line per node) against simulated ARM: %s NIC PUTs, %.2f writes and %.2f reads per node; %s",
			putLatency, float64(r.writes)/float64(r.nodes), float64(r.totalReads())/float64(r.nodes), benchjson.Machine()),
		XLabel: "seconds since every node asked for its IPs",
		YLabel: "IPs on the node's NIC",
		Marks: []plot.Mark{
			{X: putLatency.Seconds(), Label: "ARM PUT latency", Color: "#555"},
			{X: target * putLatency.Seconds(), Label: fmt.Sprintf("target %.1fx", target), Color: "#c00"},
			{X: r.converge.Seconds(), Label: "all converged", Color: "#070"},
		},
		YMax: float64(r.perNode),
	}
	for _, name := range r.names {
		s := plot.Series{Name: name}
		for _, p := range r.timeline.points[name] {
			s.Points = append(s.Points, plot.Point{X: p[0], Y: p[1]})
		}
		c.Series = append(c.Series, s)
	}
	return c
}

// outDir is bin/bench in the source tree (BENCH_OUT overrides it).
func outDir() string {
	if d := os.Getenv("BENCH_OUT"); d != "" {
		return d
	}
	return filepath.Join(testenv.RepoRoot(), "bin", "bench")
}
