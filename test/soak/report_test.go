package soak

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// report tallies the soak.
type report struct {
	mu            sync.Mutex
	seed          uint64
	drills        int
	byKind        map[drillKind]int
	injected      map[string]int // kills and restarts that landed
	doubles       int
	misplaced     int
	leaks         int // unaccounted NIC IPs and orphaned agent records left when a drill did not settle
	unsettled     int
	breaches      int
	podsStarted   int
	podsDeleted   int
	errors        int
	slowest       time.Duration
	slowestDrill  string
	maxVNet       int
	maxNIC        int
	samples       int
	settleTimes   []time.Duration
	armFaults     map[testbed.ARMFault]int
	firstProblems []string
}

func newReport(seed uint64) *report {
	return &report{seed: seed, byKind: map[drillKind]int{}, injected: map[string]int{}}
}

func (r *report) count(what string) { r.countN(what, 1) }

func (r *report) countN(what string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.injected[what] += n
}

func (r *report) problem(format string, args ...any) {
	if len(r.firstProblems) < 20 {
		r.firstProblems = append(r.firstProblems, fmt.Sprintf(format, args...))
	}
}

// add records one drill; it returns whether the drill was clean.
func (r *report) add(d *drillResult, maxVNet, maxNIC, samples int, breaches []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drills++
	r.byKind[d.kind]++
	switch d.kind {
	case drillAgentKill:
		r.injected["agent killed mid-burst"]++
	case drillOpKill:
		r.injected["operator killed"]++
	case drillAPIRestart:
		r.injected["API server restarted"]++
	}
	r.podsStarted += d.started
	r.podsDeleted += d.deleted
	r.maxVNet, r.maxNIC = max(r.maxVNet, maxVNet), max(r.maxNIC, maxNIC)
	r.samples += samples
	r.breaches += len(breaches)
	clean := len(breaches) == 0 && len(d.unsafe) == 0 && d.settled && len(d.errs) == 0
	for _, u := range d.unsafe {
		if strings.Contains(u, " held by ") {
			r.doubles++
		} else {
			r.misplaced++
		}
	}
	if d.settled {
		r.settleTimes = append(r.settleTimes, d.settle)
		if d.settle > r.slowest {
			r.slowest, r.slowestDrill = d.settle, fmt.Sprintf("drill %d (%s)", d.n, d.kind)
		}
	} else {
		r.unsettled++
		r.leaks += len(d.last.unaccounted) + len(d.last.orphaned)
	}
	r.errors += len(d.errs)
	if !clean {
		var parts []string
		parts = append(parts, breaches...)
		parts = append(parts, d.unsafe...)
		for _, e := range d.errs {
			parts = append(parts, e.Error())
		}
		if !d.settled {
			parts = append(parts, "did not settle within "+settleMax.String()+":"+d.last.String())
		}
		d.problem = strings.Join(parts, "\n    ")
		r.problem("drill %d (%s %s): %s", d.n, d.kind, d.note, d.problem)
	}
	return clean
}

func (r *report) ok() bool {
	return r.doubles == 0 && r.misplaced == 0 && r.leaks == 0 && r.unsettled == 0 && r.breaches == 0 && r.errors == 0
}

func (r *report) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "nicpool soak: %d drills, seed %d\n", r.drills, r.seed)
	fmt.Fprintf(&b, "  drills by kind:    %s\n", formatCounts(r.byKind))
	fmt.Fprintf(&b, "  kills/restarts:    %s\n", formatCounts(r.injected))
	fmt.Fprintf(&b, "  ARM faults:        %s\n", testbed.FormatFaultCounts(r.armFaults))
	fmt.Fprintf(&b, "  pods started:      %d, deleted: %d\n", r.podsStarted, r.podsDeleted)
	fmt.Fprintf(&b, "  leaked IPs:        %d (drills that did not settle: %d)\n", r.leaks, r.unsettled)
	fmt.Fprintf(&b, "  doubled IPs:       %d\n", r.doubles)
	fmt.Fprintf(&b, "  misplaced pod IPs: %d\n", r.misplaced)
	fmt.Fprintf(&b, "  limit breaches:    %d (VNet peak %d of %d, NIC peak %d of %d, %d samples)\n",
		r.breaches, r.maxVNet, vnetLimit, r.maxNIC, perVMLimit, r.samples)
	fmt.Fprintf(&b, "  errors:            %d\n", r.errors)
	fmt.Fprintf(&b, "  convergence:       median %s, slowest %s (%s)\n", median(r.settleTimes).Round(10*time.Millisecond),
		r.slowest.Round(10*time.Millisecond), r.slowestDrill)
	for _, p := range r.firstProblems {
		fmt.Fprintf(&b, "  PROBLEM %s\n", p)
	}
	return b.String()
}

func formatCounts[K ~string](m map[K]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[K(k)]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
