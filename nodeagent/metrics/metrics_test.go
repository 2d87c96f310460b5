package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsExportSnapshotAndCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg, func() Snapshot {
		return Snapshot{PoolIPs: 12, Usable: 10, Allocated: 7, Free: 3, Requested: 20, Pending: 4}
	})
	m.ObserveAllocation(20*time.Millisecond, true)
	m.Waited()
	m.TimedOut()
	m.GCReleased(ReasonPodGone, 2)
	m.PoolReleased(5)
	want := `
# HELP nicpool_agent_free_ips Usable IPs not held by any pod.
# TYPE nicpool_agent_free_ips gauge
nicpool_agent_free_ips 3
# HELP nicpool_agent_gc_releases_total Allocations released by garbage collection, by reason.
# TYPE nicpool_agent_gc_releases_total counter
nicpool_agent_gc_releases_total{reason="pod_gone"} 2
# HELP nicpool_agent_pending_allocations Allocations waiting for an IP.
# TYPE nicpool_agent_pending_allocations gauge
nicpool_agent_pending_allocations 4
# HELP nicpool_agent_requested_ips The requestedIPCount the agent last computed.
# TYPE nicpool_agent_requested_ips gauge
nicpool_agent_requested_ips 20
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nicpool_agent_free_ips", "nicpool_agent_gc_releases_total", "nicpool_agent_pending_allocations", "nicpool_agent_requested_ips"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "nicpool_agent_allocation_duration_seconds"); n != 1 {
		t.Errorf("allocation histogram has %d series, want 1", n)
	}
	var nilM *Metrics
	nilM.Waited() // must not panic
}
