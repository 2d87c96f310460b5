package azure

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestLROTimeoutThenResume(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 20 * time.Millisecond},
		func(cfg *Config) { cfg.LROTimeout = 300 * time.Millisecond })
	srv.HangLRO(true)
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 2)
	_, err := c.UpdateNIC(context.Background(), nic)
	if k := Classify(err); k != KindPending {
		t.Fatalf("update with hung lro: %v (%s), want Pending", err, k)
	}
	if c.PendingCount() != 1 {
		t.Fatalf("pending = %d, want 1", c.PendingCount())
	}
	// While the PUT is still running, reads and writes of that NIC report Pending too.
	if _, err := c.GetNIC(context.Background(), simNICID(0)); Classify(err) != KindPending {
		t.Fatalf("get during hung lro: %v, want Pending", err)
	}
	if _, err := c.UpdateNIC(context.Background(), nic); Classify(err) != KindPending {
		t.Fatalf("second update during hung lro: %v, want Pending", err)
	}
	if n := srv.Stats().PutsByNIC[simNICID(0)]; n != 1 {
		t.Fatalf("armsim accepted %d PUTs, want 1 (pending op must be resumed, not re-sent)", n)
	}

	srv.HangLRO(false)
	got, had, err := c.ResumePending(context.Background(), simNICID(0))
	if err != nil || !had {
		t.Fatalf("resume = had %v, err %v; want had, nil", had, err)
	}
	if len(got.Properties.IPConfigurations) != 3 || *got.Properties.ProvisioningState != "Succeeded" {
		t.Fatalf("resumed nic has %d configs, state %s", len(got.Properties.IPConfigurations), *got.Properties.ProvisioningState)
	}
	if c.PendingCount() != 0 {
		t.Fatalf("pending = %d after resume, want 0", c.PendingCount())
	}
	if _, had, err := c.ResumePending(context.Background(), simNICID(0)); had || err != nil {
		t.Fatalf("second resume = had %v, err %v; want nothing pending", had, err)
	}
	// The completed PUT changed the etag, so the caller's copy is now stale.
	if _, err := c.UpdateNIC(context.Background(), nic); Classify(err) != KindPreconditionFailed {
		t.Fatalf("update with pre-resume etag: %v, want PreconditionFailed", err)
	}
}

func TestGetNICFinishesPendingUpdate(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1)},
		func(cfg *Config) { cfg.LROTimeout = 300 * time.Millisecond })
	srv.HangLRO(true)
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 1)
	if _, err := c.UpdateNIC(context.Background(), nic); Classify(err) != KindPending {
		t.Fatalf("update with hung lro: %v, want Pending", err)
	}
	srv.HangLRO(false)
	getsBefore := sumCalls(srv.Stats().Calls[armsim.OpGetNIC])
	got := getNIC(t, c, simNICID(0))
	if c.PendingCount() != 0 || len(got.Properties.IPConfigurations) != 2 {
		t.Fatalf("after get: pending %d, configs %d; want 0, 2", c.PendingCount(), len(got.Properties.IPConfigurations))
	}
	// The poller's final GET is the answer; GetNIC spends no second read.
	if gets := sumCalls(srv.Stats().Calls[armsim.OpGetNIC]) - getsBefore; gets != 1 {
		t.Errorf("GetNIC that finished a pending PUT made %d NIC GETs, want 1", gets)
	}
	// A fresh read-modify-write works again.
	addDynamicConfigs(t, got, "more", 1)
	if _, err := c.UpdateNIC(context.Background(), got); err != nil {
		t.Fatalf("update after resume: %v", err)
	}
}

func TestThrottledPollLeavesUpdatePending(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 20 * time.Millisecond}, nil)
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 1)
	srv.FailNext(armsim.OpPollOperation, 100, http.StatusTooManyRequests, "")
	_, err := c.UpdateNIC(context.Background(), nic)
	if Classify(err) != KindPending {
		t.Fatalf("update with throttled polls: %v (%s), want Pending", err, Classify(err))
	}
	if d, ok := RetryAfter(err); !ok || d != time.Second {
		t.Fatalf("RetryAfter = %s, %v; want the poll's 1s", d, ok)
	}
	srv.FailNext(armsim.OpPollOperation, 0, 0, "")
	got, had, err := c.ResumePending(context.Background(), simNICID(0))
	if err != nil || !had || len(got.Properties.IPConfigurations) != 2 {
		t.Fatalf("resume = %v, had %v, err %v", got, had, err)
	}
}

func sumCalls(byStatus map[int]int) int {
	n := 0
	for _, c := range byStatus {
		n += c
	}
	return n
}
