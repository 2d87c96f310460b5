package azure

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestThrottledWithRetryAfter(t *testing.T) {
	tests := []struct {
		name      string
		op        armsim.Op
		call      func(c *NICClient) error
		retry     policy.RetryOptions // zero: armsimtest's (Retry-After 1s > its 200ms cap: no retry)
		failures  int
		wantCalls int
	}{
		{name: "get beyond retry cap", op: armsim.OpGetNIC, failures: 10, wantCalls: 1,
			call: func(c *NICClient) error { _, err := c.GetNIC(context.Background(), simNICID(0)); return err }},
		{name: "list beyond retry cap", op: armsim.OpListNICs, failures: 10, wantCalls: 1,
			call: func(c *NICClient) error { _, err := c.FindNICForVM(context.Background(), simVMID(0)); return err }},
		// With a cap above Retry-After azcore retries, and a 429 that outlasts the retries
		// still surfaces as Throttled with its Retry-After.
		{name: "retries exhausted", op: armsim.OpGetNIC, failures: 10, wantCalls: 2,
			retry: policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: 2 * time.Second},
			call:  func(c *NICClient) error { _, err := c.GetNIC(context.Background(), simNICID(0)); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, srv := startSim(t, armsim.Options{Topology: simTopology(1)}, func(cfg *Config) {
				if tt.retry.MaxRetries != 0 {
					cfg.ClientOptions.Retry = tt.retry
				}
			})
			srv.FailNext(tt.op, tt.failures, http.StatusTooManyRequests, "")
			err := tt.call(c)
			if k := Classify(err); k != KindThrottled {
				t.Fatalf("got %v (%s), want Throttled", err, k)
			}
			if d, ok := RetryAfter(err); !ok || d != time.Second {
				t.Fatalf("RetryAfter = %s, %v; want 1s (armsim's Retry-After)", d, ok)
			}
			if n := simCalls(srv, tt.op); n != tt.wantCalls {
				t.Fatalf("armsim saw %d %s calls, want %d", n, tt.op, tt.wantCalls)
			}
		})
	}
}

func TestConflictInjected(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1)}, nil)
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 1)
	srv.FailNext(armsim.OpPutNIC, 1, http.StatusConflict, "")
	if _, err := c.UpdateNIC(context.Background(), nic); Classify(err) != KindConflict {
		t.Fatalf("update: %v (%s), want Conflict", err, Classify(err))
	}
	// The fault is consumed; the same body (etag unchanged) now goes through.
	if _, err := c.UpdateNIC(context.Background(), nic); err != nil {
		t.Fatalf("update after conflict: %v", err)
	}
}

// TestLimiterLimitsRealCalls: with burst 2 and ~no refill the third read never reaches ARM.
func TestLimiterLimitsRealCalls(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1)}, func(cfg *Config) {
		cfg.ReadQPS, cfg.ReadBurst = 1e-6, 2
	})
	got := 0
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := c.GetNIC(ctx, simNICID(0))
		cancel()
		if err == nil {
			got++
			continue
		}
		if Classify(err) != KindThrottled {
			t.Fatalf("call %d: %v (%s), want Throttled", i, err, Classify(err))
		}
		if d, ok := RetryAfter(err); !ok || d < time.Hour {
			t.Fatalf("call %d: RetryAfter = %s, %v", i, d, ok)
		}
	}
	if got != 2 {
		t.Fatalf("%d reads succeeded, want 2", got)
	}
	if n := simCalls(srv, armsim.OpGetNIC); n != 2 {
		t.Fatalf("armsim saw %d GETs, want 2", n)
	}
}

// TestLimiterCoversRetries: azcore's retries pass through the limiter too, so a failing call
// cannot retry its way past the client-side budget.
func TestLimiterCoversRetries(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1)}, func(cfg *Config) {
		cfg.ReadQPS, cfg.ReadBurst = 1e-6, 2
		cfg.ClientOptions.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond}
	})
	srv.FailNext(armsim.OpGetNIC, 10, http.StatusInternalServerError, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.GetNIC(ctx, simNICID(0))
	if Classify(err) != KindThrottled {
		t.Fatalf("get: %v (%s), want the limiter's Throttled", err, Classify(err))
	}
	if n := simCalls(srv, armsim.OpGetNIC); n != 2 {
		t.Fatalf("armsim saw %d GETs, want 2 (burst), not 4 (1 + 3 retries)", n)
	}
}

// TestHTTPDateRetryAfter covers a Retry-After given as an HTTP date, which armsim does not send.
func TestHTTPDateRetryAfter(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", time.Now().Add(2*time.Minute).UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"SubscriptionRequestsThrottled","message":"slow down"}}`))
	}))
	defer ts.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	der := ts.Certificate().Raw
	if _, err := x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Package defaults: MaxRetryDelay 10s, so a 2-minute Retry-After is returned, not slept on.
	c, err := NewNICClient(Config{ARMEndpoint: ts.URL, CACertFile: caFile, Auth: AuthNone})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.GetNIC(ctx, simNICID(0))
	if Classify(err) != KindThrottled {
		t.Fatalf("get: %v (%s), want Throttled", err, Classify(err))
	}
	d, ok := RetryAfter(err)
	if !ok || d < 110*time.Second || d > 2*time.Minute {
		t.Fatalf("RetryAfter = %s, %v; want about 2m", d, ok)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("server saw %d calls, want 1 (no retry beyond MaxRetryDelay)", n)
	}
}
