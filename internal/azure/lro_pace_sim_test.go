package azure

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/nicpool/nicpool/internal/armsim"
)

// rewriteTransport lets a test change armsim's responses before the SDK sees them.
type rewriteTransport struct {
	next    policy.Transporter
	rewrite func(*http.Response)
}

func (t rewriteTransport) Do(req *http.Request) (*http.Response, error) {
	resp, err := t.next.Do(req)
	if err == nil {
		t.rewrite(resp)
	}
	return resp, err
}

// withRewrite wraps the test client's transport with rewrite.
func withRewrite(rewrite func(*http.Response)) func(*Config) {
	return func(cfg *Config) {
		co := *cfg.ClientOptions
		co.Transport = rewriteTransport{next: co.Transport, rewrite: rewrite}
		cfg.ClientOptions = &co
	}
}

// stripRetryAfter makes armsim look like an ARM stand-in that sends no poll hint.
func stripRetryAfter(resp *http.Response) {
	for _, h := range []string{"Retry-After", "retry-after-ms", "x-ms-retry-after-ms"} {
		resp.Header.Del(h)
	}
}

// A write ARM finishes in 300 ms is seen done soon after, even when ARM sends no
// Retry-After: the gaps between polls start small and double, up to LROPollInterval.
// azcore's PollUntilDone polls once at once and then sleeps a whole interval; with the
// SDK's default 30 s interval (1 s in the operator), that is past the wait. The wait is
// 5 s, not the operator's 1 s, so a loaded machine's slow round trips do not matter.
func TestUpdateNICSeesFastWriteDone(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 300 * time.Millisecond},
		func(cfg *Config) {
			cfg.LROTimeout, cfg.LROPollInterval = 5*time.Second, 30*time.Second
			withRewrite(stripRetryAfter)(cfg)
		})
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 3)
	polls := simCalls(srv, armsim.OpPollOperation)
	got, err := c.UpdateNIC(context.Background(), nic)
	if err != nil {
		t.Fatalf("update of a nic finishing in 300ms: %v (%s), want done within the wait", err, Classify(err))
	}
	if NICProvisioning(got) != ProvisioningSucceeded || len(got.Properties.IPConfigurations) != 4 {
		t.Fatalf("updated nic is %s with %d configs, want Succeeded with 4", NICProvisioningState(got), len(got.Properties.IPConfigurations))
	}
	if c.PendingCount() != 0 {
		t.Fatalf("pending = %d, want 0", c.PendingCount())
	}
	// Backoff 50, 100, 200, 400 ms...: done by the fourth poll on an idle machine (slack
	// for a loaded one; an unpaced poller would make dozens).
	if n := simCalls(srv, armsim.OpPollOperation) - polls; n < 1 || n > 10 {
		t.Errorf("update made %d operation polls, want 1..10", n)
	}
}

// When ARM's Retry-After says the write ends after the wait, UpdateNIC returns Pending at
// once, without a poll, and tells the caller when to come back.
func TestUpdateNICPendingCarriesRetryAfter(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 2 * time.Second},
		func(cfg *Config) { cfg.LROTimeout = time.Second })
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 1)
	_, err := c.UpdateNIC(context.Background(), nic)
	if Classify(err) != KindPending {
		t.Fatalf("update of a 2s write with a 1s wait: %v, want Pending", err)
	}
	wait, ok := RetryAfter(err)
	if !ok || wait <= time.Second || wait > 2*time.Second {
		t.Fatalf("RetryAfter(pending) = %s, %v; want (1s, 2s] from armsim's hint", wait, ok)
	}
	if n := simCalls(srv, armsim.OpPollOperation); n != 0 {
		t.Errorf("update polled %d times, want 0 (the hint is past the wait)", n)
	}
	// Resumed once ARM is done, one GET of the NIC is the poll and the result.
	deadline := time.Now().Add(30 * time.Second) // armsim's timer fires after the hint; generous for a loaded machine
	for srv.Snapshot().NICs[0].ProvisioningState != "Succeeded" {
		if time.Now().After(deadline) {
			t.Fatal("armsim never completed the write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	gets := simCalls(srv, armsim.OpGetNIC)
	got, had, err := c.ResumePending(context.Background(), simNICID(0))
	if err != nil || !had || got == nil || len(got.Properties.IPConfigurations) != 2 || c.PendingCount() != 0 {
		t.Fatalf("resume after armsim finished: had %v, err %v, pending %d", had, err, c.PendingCount())
	}
	if g, p := simCalls(srv, armsim.OpGetNIC)-gets, simCalls(srv, armsim.OpPollOperation); g != 1 || p != 0 {
		t.Errorf("resume of a finished write made %d GETs and %d polls, want 1 and 0", g, p)
	}
}

// A PUT whose response already says Succeeded (Azure often completes NIC writes
// synchronously) is done: its body is the NIC's new state, with no poll and no GET.
func TestUpdateNICSynchronousCompletion(t *testing.T) {
	succeeded := func(resp *http.Response) {
		if resp.Request.Method != http.MethodPut {
			return
		}
		body, _ := io.ReadAll(resp.Body)
		body = bytes.ReplaceAll(body, []byte(`"provisioningState":"Updating"`), []byte(`"provisioningState":"Succeeded"`))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
	}
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: time.Hour},
		func(cfg *Config) { cfg.LROTimeout = time.Second; withRewrite(succeeded)(cfg) })
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 2)
	gets, polls := simCalls(srv, armsim.OpGetNIC), simCalls(srv, armsim.OpPollOperation)
	got, err := c.UpdateNIC(context.Background(), nic)
	if err != nil {
		t.Fatalf("update with a terminal PUT response: %v", err)
	}
	if len(got.Properties.IPConfigurations) != 3 || got.Etag == nil || strings.EqualFold(*got.Etag, *nic.Etag) {
		t.Fatalf("updated nic: %d configs, etag %v; want 3 and a new etag", len(got.Properties.IPConfigurations), got.Etag)
	}
	if g, p := simCalls(srv, armsim.OpGetNIC)-gets, simCalls(srv, armsim.OpPollOperation)-polls; g != 0 || p != 0 {
		t.Errorf("synchronously completed update made %d GETs and %d polls, want none", g, p)
	}
}
