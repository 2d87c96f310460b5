package e2e

import (
	"context"
	"testing"
	"time"
)

// TestAgentSurvivesASilentlyDeadAPIConnection blackholes every API server
// connection the agent has (the sockets stay open, nothing is delivered
// either way: what the SNAT of loopback did to it in CI), then starts more
// pods than the node's warm pool holds. The agent must notice the dead
// connection, ask for more IPs on a new one and see the operator's answer,
// all in a few seconds: pods wait at most --alloc-timeout (12 s) for an IP,
// while client-go's own health check would have left the agent deaf for
// 30 to 45 s.
func TestAgentSurvivesASilentlyDeadAPIConnection(t *testing.T) {
	tb := newTestbed(t, 1, []string{"--alloc-timeout=12s", "--warm-ip-target=2", "--min-ip-target=2", "--batch-size=2"}, nil)
	vm := tb.VMs[0]
	before := startPods(t, tb, vm, "before", 2, 2)
	if n := vm.BlackholeAPIConnections(); n == 0 {
		t.Fatal("the agent had no API server connection to blackhole")
	}
	start := time.Now()
	after := startPods(t, tb, vm, "after", 8, 4)
	t.Logf("8 pods needing new IPs started %s after the agent's API connections went silent.", time.Since(start).Round(100*time.Millisecond))
	all := append(before, after...)
	if err := tb.CheckInvariants(all, 250); err != nil {
		t.Error(err)
	}
	if err := tb.StoresMatchPods(context.Background(), all); err != nil {
		t.Error(err)
	}
}
