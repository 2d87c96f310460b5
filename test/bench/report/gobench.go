package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// benchRun is one result line of `go test -bench`: its metrics by unit.
type benchRun map[string]float64

var benchLine = regexp.MustCompile(`^Benchmark([A-Za-z0-9_]+)(-\d+)?\s+\d+\s+(.*)$`)

// parseBench returns the result lines of benchmark name in r, in order.
func parseBench(r io.Reader, name string) ([]benchRun, error) {
	var runs []benchRun
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] != name {
			continue
		}
		f := strings.Fields(m[3])
		run := benchRun{}
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark %s: value %q of %s: %w", name, f[i], f[i+1], err)
			}
			run[f[i+1]] = v
		}
		runs = append(runs, run)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no result of benchmark %s", name)
	}
	return runs, nil
}

// figureSpec turns metrics of a benchmark's runs into a Figure.
type figureSpec struct {
	name, unit, refName string
	value, ref          string  // metric units; ref "" with fixedRef
	ratio               string  // a metric holding the run's ratio; "" computes value/ref
	fixedRef            float64 // the reference when it is a fixed limit
	// op and limit make the target: the ratio (or, with onValue, the value)
	// compared with limit; op "" reports the figure without a target.
	op      string
	limit   float64
	onValue bool
	// optional skips the figure when the first run lacks its metric (output
	// of an older benchmark).
	optional bool
}

// benchSpecs lists, per Go benchmark, the figures make bench reports.
var benchSpecs = map[string][]figureSpec{
	"PodNetworkAddDel": {
		{name: "pod ADD+DEL, warm pool, mean", unit: "ms", refName: "ptp+host-local", value: "nicpool-ms", ref: "reference-ms", op: "<=", limit: 0.5},
		{name: "pod ADD+DEL p50", unit: "ms", refName: "ptp+host-local", value: "nicpool-p50-ms", ref: "reference-p50-ms"},
		{name: "pod ADD+DEL p99", unit: "ms", refName: "ptp+host-local", value: "nicpool-p99-ms", ref: "reference-p99-ms"},
		{name: "pod ADD alone, mean", unit: "ms", refName: "ptp+host-local", value: "nicpool-add-ms", ref: "reference-add-ms", optional: true},
		{name: "pod DEL alone, mean", unit: "ms", refName: "ptp+host-local", value: "nicpool-del-ms", ref: "reference-del-ms", optional: true},
	},
	"PodNetworkBurst": {
		{name: "warm burst of 250 ADDs, wall", unit: "ms", refName: "ptp+host-local", value: "nicpool-ms", ref: "reference-ms", op: "<=", limit: 0.5},
		{name: "warm burst per pod p50", unit: "ms", refName: "ptp+host-local", value: "nicpool-pod-p50-ms", ref: "reference-pod-p50-ms"},
		{name: "warm burst per pod p99", unit: "ms", refName: "ptp+host-local", value: "nicpool-pod-p99-ms", ref: "reference-pod-p99-ms"},
	},
	"PodNetworkColdBurst": {
		{name: "cold burst of 250 ADDs, wall", unit: "ms", refName: "ARM NIC PUT latency", value: "wall-ms", ref: "put-latency-ms"},
		{name: "cold burst, pods bound", unit: "ms", refName: "ARM NIC PUT latency", value: "bound-ms", ref: "put-latency-ms"},
		{name: "cold burst, NIC holds every pod's IP", unit: "ms", refName: "ARM NIC PUT latency", value: "nic-full-ms", ref: "put-latency-ms"},
		{name: "cold burst NIC writes (most of any run)", unit: "writes", refName: "allowed", value: "max-nic-writes", fixedRef: 2, op: "<=", limit: 2, onValue: true},
		{name: "cold burst per pod p50", unit: "ms", refName: "ARM NIC PUT latency", value: "pod-p50-ms", ref: "put-latency-ms"},
		{name: "cold burst per pod p99", unit: "ms", refName: "ARM NIC PUT latency", value: "pod-p99-ms", ref: "put-latency-ms"},
	},
	"PodDatapath": {
		{name: "throughput pod-to-pod across VMs", unit: "Gbit/s", refName: "VM-to-VM", value: "pod-pod-gbps", ref: "vm-vm-gbps", ratio: "pod-pod-gbps-ratio", op: ">=", limit: 0.97},
		{name: "throughput pod-to-VM", unit: "Gbit/s", refName: "VM-to-VM", value: "pod-vm-gbps", ref: "vm-vm-gbps", ratio: "pod-vm-gbps-ratio", op: ">=", limit: 0.97},
		{name: "RTT pod-to-pod across VMs, median", unit: "µs", refName: "VM-to-VM", value: "pod-pod-rtt-p50-us", ref: "vm-vm-rtt-p50-us", ratio: "pod-pod-rtt-p50-ratio", op: "<=", limit: 1.05},
		{name: "RTT pod-to-VM, median", unit: "µs", refName: "VM-to-VM", value: "pod-vm-rtt-p50-us", ref: "vm-vm-rtt-p50-us", ratio: "pod-vm-rtt-p50-ratio", op: "<=", limit: 1.05},
		{name: "RTT pod-to-pod across VMs, p99", unit: "µs", refName: "VM-to-VM", value: "pod-pod-rtt-p99-us", ref: "vm-vm-rtt-p99-us", ratio: "pod-pod-rtt-p99-ratio"},
		{name: "RTT pod-to-VM, p99", unit: "µs", refName: "VM-to-VM", value: "pod-vm-rtt-p99-us", ref: "vm-vm-rtt-p99-us", ratio: "pod-vm-rtt-p99-ratio"},
	},
}

// figures applies specs to runs: the value and the reference are the
// medians over the runs, the ratio the median of the runs' own ratios (each
// run measures both sides together, so load drift between runs cancels;
// a benchmark that measures in rounds reports its rounds' median ratio).
func figures(name string, runs []benchRun) ([]Figure, error) {
	specs, ok := benchSpecs[name]
	if !ok {
		return nil, fmt.Errorf("no figures defined for benchmark %s", name)
	}
	var out []Figure
	for _, s := range specs {
		if _, ok := runs[0][s.value]; !ok && s.optional {
			continue
		}
		var vals, refs, ratios []float64
		for i, r := range runs {
			v, ok := r[s.value]
			if !ok {
				return nil, fmt.Errorf("benchmark %s run %d has no %s", name, i+1, s.value)
			}
			ref := s.fixedRef
			if s.ref != "" {
				if ref, ok = r[s.ref]; !ok {
					return nil, fmt.Errorf("benchmark %s run %d has no %s", name, i+1, s.ref)
				}
			}
			if ref == 0 {
				return nil, fmt.Errorf("benchmark %s run %d: reference %s is zero", name, i+1, s.ref)
			}
			ratio := v / ref
			if s.ratio != "" {
				if ratio, ok = r[s.ratio]; !ok {
					return nil, fmt.Errorf("benchmark %s run %d has no %s", name, i+1, s.ratio)
				}
			}
			vals, refs, ratios = append(vals, v), append(refs, ref), append(ratios, ratio)
		}
		f := Figure{Name: s.name, Unit: s.unit, ReferenceName: s.refName, Value: median(vals), Reference: median(refs), Ratio: median(ratios), Met: true}
		if s.onValue {
			f.Value = slices.Max(vals) // a limit holds in every run
			f.Ratio = f.Value / f.Reference
		}
		if s.op != "" {
			got, unit := f.Ratio, "x"
			if s.onValue {
				got, unit = f.Value, " "+s.unit
			}
			f.Target = fmt.Sprintf("%s %g%s", s.op, s.limit, unit)
			f.Met = (s.op == "<=" && got <= s.limit) || (s.op == ">=" && got >= s.limit)
		}
		out = append(out, f)
	}
	return out, nil
}

// median of v (the mean of the middle two for an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
