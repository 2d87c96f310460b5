// Package soak runs randomized kill and fault drills against the simulated
// Azure VNet (test/e2e/testbed) and audits nicpool's invariants after each:
// every live pod holds exactly one IP, on its own node's NIC; no IP is held
// by two pods; once things settle, every nicpool IP configuration on a NIC
// is accounted for by a pod or a pool; the VNet never holds more nicpool
// IPs than its limit, sampled throughout. `make test` runs a few drills;
// `make soak SOAK_DRILLS=200` runs many.
package soak

import (
	"flag"
	"os"
	"testing"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

var (
	flagDrills = flag.Int("soak.drills", 3, "number of drills")
	flagSeed   = flag.Uint64("soak.seed", 0, "random seed (0: from the clock); a failing run prints its seed")
	flagLogs   = flag.String("soak.logs", "", "directory that receives every process log when the soak fails")
	flagKinds  = flag.String("soak.kinds", "", "comma-separated drill kinds to draw from (default all): churn, agent-kill-9, operator-kill-9, cni-plugin-kill-9, arm-faults, apiserver-restart")
	flagFailed = flag.Bool("soak.failed-operations", true, "inject NIC writes whose operation ends Failed")
)

var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testbed.RunTests(m, "the soak", &binDir))
}
