package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// TestSoak runs -soak.drills randomized drills over a three-VM testbed.
// Each drill churns pods (a burst on one VM, deletions anywhere) while one
// fault hits: kill -9 of an agent mid-burst, of the operator mid-PUT, of the
// CNI plugin mid-ADD after the agent allocated, an API server restart, or
// ARM faults on 20% of the operator's calls (also mixed into a quarter of
// the other drills). Then it audits until the system has settled.
func TestSoak(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("Soak seed %d (rerun with -soak.seed=%d).", seed, seed)
	ctx := context.Background()
	work := t.TempDir()
	tb, err := testbed.New(ctx, testbed.Config{
		VMs: 3, BinDir: binDir, WorkDir: work, PutLatency: 300 * time.Millisecond,
		AgentArgs: []string{"--warm-ip-target=2", "--min-ip-target=2", "--batch-size=4",
			"--release-cooldown=2s", "--alloc-timeout=20s", "--gc-grace=3s"},
		OperatorArgs: []string{fmt.Sprintf("--per-vnet-limit=%d", vnetLimit), fmt.Sprintf("--per-vm-limit=%d", perVMLimit),
			"--limit-retry-interval=1s", "--pending-poll-interval=500ms"},
		ARMFaults: true, Seed: seed, Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("start testbed: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			keepLogs(t, tb, work)
		}
		tb.Close()
	})
	if err := tb.WaitReady(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	sampler := startSampler(tb, vnetLimit, perVMLimit)
	defer sampler.close()
	rep := newReport(seed)
	s := &soak{tb: tb, rnd: rand.New(rand.NewPCG(seed, seed>>1|1)), rep: rep, logf: t.Logf}
	if *flagKinds != "" {
		s.kinds = strings.Split(*flagKinds, ",")
		for _, k := range s.kinds {
			if !slices.ContainsFunc(drillWeights, func(w weightedKind) bool { return string(w.kind) == k }) {
				t.Fatalf("-soak.kinds: unknown drill kind %q", k)
			}
		}
	}
	start := time.Now()
	failedInARow := 0
	for n := 1; n <= *flagDrills; n++ {
		d := s.runDrill(ctx, n, s.pickKind())
		maxVNet, maxNIC, samples, breaches := sampler.take()
		clean := rep.add(&d, maxVNet, maxNIC, samples, breaches)
		faults := ""
		if d.withFaults {
			faults = " +ARM faults"
		}
		status := fmt.Sprintf("settled in %s", d.settle.Round(10*time.Millisecond))
		if !clean {
			status = "PROBLEM:\n    " + d.problem
		}
		t.Logf("Drill %d/%d %s%s (%s): %d pods started, %d deleted, %d live; %s; VNet peak %d.",
			n, *flagDrills, d.kind, faults, d.note, d.started, d.deleted, len(s.live), status, maxVNet)
		failedInARow++
		if clean {
			failedInARow = 0
		}
		if failedInARow >= 3 {
			t.Errorf("stopped after 3 drills in a row with problems")
			break
		}
	}
	rep.armFaults = tb.Faults.Counts()
	out := rep.String() + fmt.Sprintf("  duration:          %s\n", time.Since(start).Round(time.Second))
	fmt.Print(out)
	t.Log("\n" + out)
	if err := tb.FabricError(); err != nil {
		t.Errorf("fabric: %v", err)
	}
	if !rep.ok() {
		t.Error("the soak found leaked, doubled or misplaced IPs, limit breaches, errors or drills that did not settle")
	}
}

// keepLogs copies every process log to -soak.logs and prints their tails.
func keepLogs(t *testing.T, tb *testbed.Testbed, work string) {
	logs, _ := filepath.Glob(filepath.Join(work, "*.log"))
	more, _ := filepath.Glob(filepath.Join(work, "*", "*.log"))
	for _, l := range append(logs, more...) {
		data, _ := os.ReadFile(l)
		if *flagLogs != "" {
			name := strings.ReplaceAll(strings.TrimPrefix(l, work+"/"), "/", "-")
			_ = os.WriteFile(filepath.Join(*flagLogs, name), data, 0o600)
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		t.Logf("==== tail of %s\n%s", l, data)
	}
	t.Logf("==== Azure view\n%s", tb.AzureView())
}
