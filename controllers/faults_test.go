package controllers

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// TestCrashBetweenWriteAndStatus stops the operator right after a NIC write,
// before the pass writes status, and restarts it: the configurations already
// on the NIC are adopted, none leaked and none duplicated.
func TestCrashBetweenWriteAndStatus(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.4.0.0/16", "10.4.0.0/24", 2))
	var once sync.Once
	crashed := make(chan struct{})
	var first *operator
	first = startOperator(t, s, testOptions(), func(r *PoolReconciler) {
		r.afterNICWrite = func(string) error {
			once.Do(func() {
				first.cancel()
				close(crashed)
			})
			return errCrash
		}
	})
	createNode(t, "crash-0", providerID(0))
	createNode(t, "crash-1", providerID(1))
	setRequestWhenExists(t, "crash-0", 30)
	select {
	case <-crashed:
	case <-time.After(60 * time.Second):
		t.Fatal("no NIC write happened")
	}
	first.stop()
	owned, _ := nicOwned(s, nicID(0))
	if len(owned) != 30 {
		t.Fatalf("NIC has %d nicpool configurations after the crashed write, want 30", len(owned))
	}
	if n := len(getPool(t, "crash-0").Status.IPs); n != 0 {
		t.Fatalf("status has %d IPs after the crash, want 0 (the crash came before the status write)", n)
	}

	startOperator(t, s, testOptions(), nil)
	setRequestWhenExists(t, "crash-1", 10)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("crash-0"), nicID(0), 30) })
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("crash-1"), nicID(1), 10) })
	after, _ := nicOwned(s, nicID(0))
	for name, ip := range owned {
		if after[name] != ip {
			t.Errorf("configuration %s=%s was not adopted as is (now %q)", name, ip, after[name])
		}
	}
}

// TestARMFaultsConverge injects 412, 409, 429 (Retry-After: 1) and 500 on NIC
// writes; the pool converges after each, and a 429 delays the retry.
func TestARMFaultsConverge(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.5.0.0/16", "10.5.0.0/24", 1))
	startOperator(t, s, testOptions(), nil)
	createNode(t, "faults-0", providerID(0))
	setRequestWhenExists(t, "faults-0", 5)
	eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("faults-0"), nicID(0), 5) })
	tests := []struct {
		name   string
		status int
		code   string
		n      int
	}{
		{name: "412 precondition failed", status: http.StatusPreconditionFailed, n: 2},
		{name: "409 another operation in progress", status: http.StatusConflict, code: "AnotherOperationInProgress", n: 1},
		{name: "429 with Retry-After", status: http.StatusTooManyRequests, n: 1},
		{name: "500 beyond the SDK's retries", status: http.StatusInternalServerError, n: 6},
	}
	want := 5
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want += 5
			s.srv.FailNext(armsim.OpPutNIC, tt.n, tt.status, tt.code)
			start := time.Now()
			setRequest(t, "faults-0", want, nil)
			eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("faults-0"), nicID(0), want) })
			if tt.status == http.StatusTooManyRequests && time.Since(start) < time.Second {
				t.Errorf("converged %s after a 429 with Retry-After: 1, want at least 1s", time.Since(start))
			}
			if got := s.srv.Stats().Calls[armsim.OpPutNIC][tt.status]; got == 0 {
				t.Errorf("no PUT answered %d: the fault was not exercised", tt.status)
			}
		})
	}
	// Someone else adds an IP configuration; it survives the next passes.
	nic, err := s.nics.GetNIC(context.Background(), nicID(0))
	if err != nil {
		t.Fatalf("get nic: %v", err)
	}
	nic.Properties.IPConfigurations = nicsync.Apply(nic, nicsync.Plan{Add: []string{"someone-else"}}, *nicsync.PrimaryConfig(nic).Properties.Subnet.ID)
	if _, err := s.nics.UpdateNIC(context.Background(), nic); err != nil {
		t.Fatalf("add foreign configuration: %v", err)
	}
	_, foreignBefore := nicOwned(s, nicID(0))
	want += 5
	setRequest(t, "faults-0", want, nil)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("faults-0"), nicID(0), want) })
	if owned, foreign := nicOwned(s, nicID(0)); len(owned) != want || len(foreign) != 1 || foreign["someone-else"] != foreignBefore["someone-else"] {
		t.Errorf("NIC has %d nicpool configurations and foreign %v, want %d and %v", len(owned), foreign, want, foreignBefore)
	}
}
