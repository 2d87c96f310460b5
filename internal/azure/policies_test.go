package azure

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestOpName(t *testing.T) {
	const rg = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network"
	tests := []struct {
		method, path, want string
	}{
		{http.MethodGet, rg + "/networkInterfaces/n1", "GetNIC"},
		{http.MethodPut, rg + "/networkInterfaces/n1", "PutNIC"},
		{http.MethodGet, rg + "/networkInterfaces", "ListNICs"},
		{http.MethodGet, rg + "/networkInterfaces/", "ListNICs"},
		{http.MethodGet, rg + "/virtualNetworks/v/subnets/s1", "GetSubnet"},
		{http.MethodGet, rg + "/virtualNetworks/v", "GetVNet"},
		{http.MethodGet, "/subscriptions/s/providers/Microsoft.Network/locations/westeurope/operations/abc", "PollOperation"},
		{http.MethodGet, "/subscriptions/s/providers/Microsoft.Network/locations/westeurope/operationResults/abc", "PollOperation"},
		{http.MethodDelete, rg + "/networkInterfaces/n1", "OtherDELETE"},
		{http.MethodGet, "/", "OtherGET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			if got := opName(tt.method, tt.path); got != tt.want {
				t.Fatalf("opName = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWaitToken(t *testing.T) {
	tests := []struct {
		name     string
		burst    int
		calls    int
		wantPass int
	}{
		{name: "within burst", burst: 3, calls: 3, wantPass: 3},
		{name: "third call refused with burst 2", burst: 2, calls: 3, wantPass: 2},
		{name: "burst 1", burst: 1, calls: 5, wantPass: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// ~0 refill: one token per ~11 days.
			lim := rate.NewLimiter(rate.Limit(1e-6), tt.burst)
			pass := 0
			for i := 0; i < tt.calls; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				err := waitToken(ctx, lim, "read")
				cancel()
				if err == nil {
					pass++
					continue
				}
				if Classify(err) != KindThrottled || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("call %d: err %v classified %s, want Throttled wrapping DeadlineExceeded", i, err, Classify(err))
				}
				if d, ok := RetryAfter(err); !ok || d < time.Hour {
					t.Fatalf("call %d: RetryAfter = %s, %v; want the limiter's long wait", i, d, ok)
				}
			}
			if pass != tt.wantPass {
				t.Fatalf("%d calls passed, want %d", pass, tt.wantPass)
			}
		})
	}
}

func TestWaitTokenCancelReturnsToken(t *testing.T) {
	// Refill of 1 token per 200ms; no deadline, so waitToken sleeps until cancelled.
	lim := rate.NewLimiter(rate.Every(200*time.Millisecond), 1)
	if err := waitToken(context.Background(), lim, "write"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := waitToken(ctx, lim, "write")
	if !errors.Is(err, context.Canceled) || Classify(err) != KindThrottled {
		t.Fatalf("cancelled wait = %v (%s), want Canceled classified Throttled", err, Classify(err))
	}
	// The waiting call completes once a token refills.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := waitToken(ctx2, lim, "write"); err != nil {
		t.Fatalf("wait after refill: %v", err)
	}
}
