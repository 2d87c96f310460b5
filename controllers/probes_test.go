package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/nicpool/nicpool/internal/armsim"
)

// TestReadyCheck: a standby replica is ready, the leader only once its
// ledger is rebuilt.
func TestReadyCheck(t *testing.T) {
	tests := []struct {
		name             string
		elected, rebuilt bool
		wantReady        bool
	}{
		{name: "standby waiting for the lease", wantReady: true},
		{name: "leader before the ledger rebuild", elected: true},
		{name: "leader after the ledger rebuild", elected: true, rebuilt: true, wantReady: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			elected := make(chan struct{})
			if tt.elected {
				close(elected)
			}
			l := NewLedger(100)
			if tt.rebuilt {
				l.Rebuild(nil)
			}
			err := readyCheck(electedManager{elected: elected}, l)(nil)
			if (err == nil) != tt.wantReady {
				t.Errorf("readyCheck = %v, want ready %v", err, tt.wantReady)
			}
		})
	}
}

// TestReadinessWaitsForLedgerRebuild holds the ledger rebuild back: the
// operator's /readyz says not ready and nothing is written to ARM until the
// rebuild has run; then it is ready and the pool converges.
func TestReadinessWaitsForLedgerRebuild(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.8.0.0/16", "10.8.0.0/24", 1))
	addr := freeAddr(t)
	mgrOpts := testManagerOptions()
	mgrOpts.HealthProbeBindAddress = addr
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	op := launchOperator(t, operatorSpec{mgr: mgrOpts, opts: testOptions(), nics: s.nics,
		wrap: func(m manager.Manager) manager.Manager { return gatedManager{Manager: m, gate: gate} }})
	t.Cleanup(release) // runs before the operator's stop
	createNode(t, "ready-0", providerID(0))
	setRequestWhenExists(t, "ready-0", 5)
	eventually(t, 30*time.Second, func() string {
		if code := probe(addr, "/healthz"); code != http.StatusOK {
			return fmt.Sprintf("/healthz answered %d, want 200", code)
		}
		if code := probe(addr, "/readyz/vnet-ledger"); code != http.StatusInternalServerError {
			return fmt.Sprintf("/readyz/vnet-ledger answered %d before the rebuild, want 500", code)
		}
		return ""
	})
	if code := probe(addr, "/readyz"); code != http.StatusInternalServerError {
		t.Errorf("/readyz answered %d before the rebuild, want 500", code)
	}
	if op.ledger.IsReady() {
		t.Error("ledger ready before its rebuild listed the pools")
	}
	if puts := s.srv.Stats().Calls[armsim.OpPutNIC]; len(puts) != 0 {
		t.Errorf("NIC writes before the ledger rebuild: %v", puts)
	}

	release()
	eventually(t, 30*time.Second, func() string {
		if code := probe(addr, "/readyz"); code != http.StatusOK {
			return fmt.Sprintf("/readyz answered %d after the rebuild, want 200", code)
		}
		return statusMatchesNIC(s, lookPool("ready-0"), nicID(0), 5)
	})
}

// TestLeaderElection runs two operators on one Lease: only the leader
// reconciles and rebuilds its ledger; when it stops, the other takes over.
func TestLeaderElection(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.9.0.0/16", "10.9.0.0/24", 1))
	leaseID := fmt.Sprintf("nicpool-test-%d", time.Now().UnixNano())
	var ops [2]*operator
	var nics [2]*countingNICs
	for i := range ops {
		// The production options, on a Lease of this test's own, with no
		// listeners and a short retry so the standby takes over promptly.
		opts := testOptions()
		opts.LeaderElect, opts.LeaderElectionNamespace, opts.MetricsAddr, opts.ProbeAddr = true, "default", "0", "0"
		mgrOpts := ManagerOptions(opts, env.Scheme)
		mgrOpts.LeaderElectionID = leaseID
		mgrOpts.RetryPeriod = ptr.To(500 * time.Millisecond)
		mgrOpts.Controller = testManagerOptions().Controller
		nics[i] = &countingNICs{NICAPI: s.nics}
		ops[i] = launchOperator(t, operatorSpec{mgr: &mgrOpts, opts: opts, nics: nics[i]})
	}
	createNode(t, "le-0", providerID(0))
	setRequestWhenExists(t, "le-0", 5)
	eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("le-0"), nicID(0), 5) })
	leader, standby := 0, 1
	if nics[1].calls.Load() > 0 {
		leader, standby = 1, 0
	}
	if n := nics[standby].calls.Load(); n != 0 || nics[leader].calls.Load() == 0 {
		t.Fatalf("ARM calls: operator %d made %d, operator %d made %d; want the leader's only", leader, nics[leader].calls.Load(), standby, n)
	}
	if ops[standby].ledger.IsReady() {
		t.Error("the standby rebuilt its ledger")
	}

	ops[leader].stop()
	setRequest(t, "le-0", 9, nil)
	eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("le-0"), nicID(0), 9) })
	if nics[standby].calls.Load() == 0 || !ops[standby].ledger.IsReady() {
		t.Errorf("the standby did not take over: %d ARM calls, ledger ready %v", nics[standby].calls.Load(), ops[standby].ledger.IsReady())
	}
}

// electedManager is a manager whose Elected channel the test controls; no
// other method may be called.
type electedManager struct {
	manager.Manager
	elected chan struct{}
}

// Elected returns the test's channel.
func (m electedManager) Elected() <-chan struct{} { return m.elected }

// gatedManager hands out an API reader whose List waits for gate: the
// ledger rebuild lists the pools through it.
type gatedManager struct {
	manager.Manager
	gate <-chan struct{}
}

// GetAPIReader returns the gated reader.
func (m gatedManager) GetAPIReader() client.Reader {
	return gatedReader{Reader: m.Manager.GetAPIReader(), gate: m.gate}
}

// gatedReader is a reader whose List waits for gate.
type gatedReader struct {
	client.Reader
	gate <-chan struct{}
}

// List waits for the gate, then lists.
func (r gatedReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	select {
	case <-r.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.Reader.List(ctx, list, opts...)
}

// countingNICs counts the NIC reads and writes an operator makes.
type countingNICs struct {
	NICAPI
	calls atomic.Int64
}

// GetNIC counts and reads.
func (c *countingNICs) GetNIC(ctx context.Context, nicID string) (*armnetwork.Interface, error) {
	c.calls.Add(1)
	return c.NICAPI.GetNIC(ctx, nicID)
}

// UpdateNIC counts and writes.
func (c *countingNICs) UpdateNIC(ctx context.Context, nic *armnetwork.Interface) (*armnetwork.Interface, error) {
	c.calls.Add(1)
	return c.NICAPI.UpdateNIC(ctx, nic)
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("free port %s: %v", addr, err)
	}
	return addr
}

// probe GETs path on addr and returns the status code, 0 when unreachable
// or when the body cannot be read.
func probe(addr, path string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	_, rerr := io.Copy(io.Discard, resp.Body)
	if err := errors.Join(rerr, resp.Body.Close()); err != nil {
		return 0
	}
	return resp.StatusCode
}
