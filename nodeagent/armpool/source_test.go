package armpool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/poolsource"
	"github.com/nicpool/nicpool/nodeagent/store"
)

const (
	testSub = "00000000-0000-0000-0000-000000000001"
	testRG  = "rg-standalone"
)

var vmID = "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Compute/virtualMachines/vm-0"

type env struct {
	sim  *armsim.Server
	nics *azure.NICClient
}

func start(t *testing.T, subnetCIDR string) *env {
	t.Helper()
	topo := armsim.GenerateTopology(testSub, testRG, "10.50.0.0/16", subnetCIDR, 2)
	// An administrator's own secondary configuration: never touched.
	topo.NICs[0].ExtraIPConfigs = []string{"admin-own"}
	sim, co, cred := armsimtest.Start(t, armsim.Options{Topology: topo})
	nics, err := azure.NewNICClient(azure.Config{ClientOptions: co, Credential: cred, LROTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim: sim, nics: nics}
}

func (e *env) source(t *testing.T, mod func(*Config)) *Source {
	t.Helper()
	cfg := Config{NICs: e.nics, VMID: vmID, Log: logr.Discard(), BusyRetry: time.Millisecond, ThrottleRetry: time.Millisecond, FullRetry: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nicpoolIPs returns vm-0's nicpool configurations' addresses, and whether
// the administrator's own configuration is still there.
func (e *env) nicpoolIPs() (ips []string, adminKept bool) {
	for _, n := range e.sim.Snapshot().NICs {
		if n.Name != "vm-0-nic" {
			continue
		}
		for _, c := range n.IPConfigs {
			switch {
			case c.Name == "admin-own":
				adminKept = true
			case strings.HasPrefix(c.Name, "nicpool-"):
				ips = append(ips, c.IP)
			}
		}
	}
	return ips, adminKept
}

func newAlloc(p pool.Config) *ipam.Allocator {
	return ipam.New(store.NewMemStore(), ipam.Config{Policy: p, AllocTimeout: 50 * time.Millisecond})
}

// syncUntil runs passes until done holds; every pass's error must say when
// to retry (a RetryLater) or be nil. Bounded: a pass is a few local HTTP
// calls, 200 of them take well under a minute even on a loaded machine.
func syncUntil(t *testing.T, src *Source, alloc *ipam.Allocator, done func() bool) {
	t.Helper()
	for range 200 {
		err := poolsource.SyncOnce(context.Background(), src, alloc)
		var later *poolsource.RetryLater
		if err != nil && !errors.As(err, &later) && !errors.Is(err, poolsource.ErrStale) {
			t.Logf("pass failed: %v", err)
		}
		if done() {
			return
		}
	}
	t.Fatalf("no convergence after 200 passes; allocator %+v", alloc.Snapshot())
}

func key(i int) agentapi.AttachmentKey {
	return agentapi.AttachmentKey{ContainerID: fmt.Sprintf("c%03d", i), IfName: "eth0"}
}

// TestGrowReleaseAdopt walks the self-managed pool through its life: it
// grows to the warm target in NIC writes the administrator's configuration
// survives; allocations get NIC IPs, never the primary; idle IPs beyond the
// target go back in two phases; a new source (the agent restarted after a
// crash) adopts what is on the NIC instead of adding more.
func TestGrowReleaseAdopt(t *testing.T) {
	e := start(t, "10.50.0.0/24")
	p := pool.Config{WarmIPTarget: 3, MinIPTarget: 0, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: 0}
	alloc := newAlloc(p)
	src := e.source(t, nil)
	syncUntil(t, src, alloc, func() bool { return alloc.Snapshot().Free == 3 })
	ips, kept := e.nicpoolIPs()
	if len(ips) != 3 || !kept {
		t.Fatalf("nic holds nicpool IPs %v (admin config kept: %v), want 3 and the admin's kept", ips, kept)
	}
	primary := alloc.Pool().PrimaryIP
	got := map[string]bool{}
	for i := range 5 {
		resp, err := alloc.Allocate(context.Background(), agentapi.Attachment{AttachmentKey: key(i)})
		for err != nil {
			// The pool grows only when the source is synced: do so.
			syncUntil(t, src, alloc, func() bool { return alloc.Snapshot().Free > 0 })
			resp, err = alloc.Allocate(context.Background(), agentapi.Attachment{AttachmentKey: key(i)})
		}
		if resp.IP == primary || got[resp.IP] {
			t.Fatalf("allocation %d got %s (primary %s, already given: %v)", i, resp.IP, primary, got[resp.IP])
		}
		got[resp.IP] = true
	}
	syncUntil(t, src, alloc, func() bool { ips, _ := e.nicpoolIPs(); return len(ips) == 8 })
	// Release four: the pool shrinks back to 1 in use + 3 warm.
	for i := range 4 {
		if _, err := alloc.Release(key(i)); err != nil {
			t.Fatal(err)
		}
	}
	syncUntil(t, src, alloc, func() bool { ips, _ := e.nicpoolIPs(); return len(ips) == 4 })
	held, _ := alloc.Check(key(4))
	ips, kept = e.nicpoolIPs()
	if !kept || !contains(ips, held.IP) {
		t.Fatalf("after release the nic holds %v (admin kept %v); the IP in use %s must stay", ips, kept, held.IP)
	}
	// Restart: a fresh source and allocator over the same record adopt
	// the NIC's four configurations and add none.
	st := store.NewMemStore()
	if _, err := st.Add(held); err != nil {
		t.Fatal(err)
	}
	alloc2 := ipam.New(st, ipam.Config{Policy: p})
	src2 := e.source(t, nil)
	syncUntil(t, src2, alloc2, func() bool { return alloc2.Snapshot().PoolIPs == 4 })
	for range 3 {
		if err := poolsource.SyncOnce(context.Background(), src2, alloc2); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := e.nicpoolIPs(); len(after) != 4 {
		t.Fatalf("after the restart the nic holds %d nicpool IPs, want the 4 adopted", len(after))
	}
}

// TestLimits: the local VNet share caps the NIC below the request, and so
// does the per-VM limit.
func TestLimits(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*Config)
	}{
		{name: "vnet share", mod: func(c *Config) { c.VNetShare = 4 }},
		{name: "per-VM limit", mod: func(c *Config) { c.PerVMLimit = 4 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, "10.50.0.0/24")
			alloc := newAlloc(pool.Config{WarmIPTarget: 10, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: time.Hour})
			src := e.source(t, tt.mod)
			syncUntil(t, src, alloc, func() bool { return alloc.Snapshot().PoolIPs == 4 })
			for range 3 {
				_ = poolsource.SyncOnce(context.Background(), src, alloc)
			}
			if ips, _ := e.nicpoolIPs(); len(ips) != 4 {
				t.Fatalf("nic holds %d nicpool IPs, want the cap of 4", len(ips))
			}
		})
	}
}

// TestSubnetFull: a subnet with room for fewer IPs than asked gets what it
// has, in writes ARM accepts after refusing the whole.
func TestSubnetFull(t *testing.T) {
	// A /28 has 11 usable addresses: 2 primaries, the admin's, 8 left.
	e := start(t, "10.50.0.0/28")
	alloc := newAlloc(pool.Config{WarmIPTarget: 20, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: time.Hour})
	src := e.source(t, nil)
	syncUntil(t, src, alloc, func() bool { return alloc.Snapshot().PoolIPs >= 6 })
	err := poolsource.SyncOnce(context.Background(), src, alloc)
	var later *poolsource.RetryLater
	if err != nil && !errors.As(err, &later) {
		t.Fatalf("a full subnet gave %v, want a retry later", err)
	}
}

// TestARMFaults: 429, 409, 412 and 500 on the NIC's reads and writes end a
// pass with an error, never a panic, and the pool converges once ARM
// recovers; no IP is handed out twice.
func TestARMFaults(t *testing.T) {
	e := start(t, "10.50.0.0/24")
	alloc := newAlloc(pool.Config{WarmIPTarget: 4, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: time.Hour})
	src := e.source(t, nil)
	for _, f := range []struct {
		op     armsim.Op
		status int
		code   string
	}{
		{armsim.OpGetNIC, http.StatusTooManyRequests, ""},
		{armsim.OpPutNIC, http.StatusConflict, armsim.CodeAnotherOperationInProgress},
		{armsim.OpPutNIC, http.StatusPreconditionFailed, armsim.CodePreconditionFailed},
		{armsim.OpPutNIC, http.StatusInternalServerError, ""},
		{armsim.OpGetNIC, http.StatusInternalServerError, ""},
		{armsim.OpPutNIC, http.StatusTooManyRequests, ""},
	} {
		e.sim.FailNext(f.op, 5, f.status, f.code)
		for range 3 {
			_ = poolsource.SyncOnce(context.Background(), src, alloc)
		}
	}
	e.sim.FailNext(armsim.OpGetNIC, 0, 0, "")
	e.sim.FailNext(armsim.OpPutNIC, 0, 0, "")
	syncUntil(t, src, alloc, func() bool { return alloc.Snapshot().Free == 4 })
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			resp, err := alloc.Allocate(context.Background(), agentapi.Attachment{AttachmentKey: key(i)})
			if err != nil {
				t.Errorf("allocate %d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[resp.IP] {
				t.Errorf("IP %s handed out twice", resp.IP)
			}
			seen[resp.IP] = true
		})
	}
	wg.Wait()
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a client succeeded")
	}
	if _, err := New(Config{NICs: &azure.NICClient{}}); err == nil {
		t.Error("New without a NIC or VM id succeeded")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestWriteAsksForAFreshRead: a pass that wrote the NIC says so (ErrStale),
// so the loop offers the new IPs at once instead of at the next resync,
// and the pass after it finds nothing to write.
func TestWriteAsksForAFreshRead(t *testing.T) {
	e := start(t, "10.50.0.0/24")
	alloc := newAlloc(pool.Config{WarmIPTarget: 2, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: time.Hour})
	src := e.source(t, nil)
	if err := poolsource.SyncOnce(context.Background(), src, alloc); !errors.Is(err, poolsource.ErrStale) {
		t.Fatalf("the pass that added IPs returned %v, want ErrStale", err)
	}
	if err := poolsource.SyncOnce(context.Background(), src, alloc); err != nil {
		t.Fatalf("the next pass: %v, want nil (nothing to write)", err)
	}
	if free := alloc.Snapshot().Free; free != 2 {
		t.Fatalf("%d free IPs after the fresh read, want 2", free)
	}
}
