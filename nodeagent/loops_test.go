package nodeagent

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/store"
)

type fakeSNAT struct {
	mu      sync.Mutex
	primary string
	cidrs   []string
	syncs   int
}

func (f *fakeSNAT) Sync(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	return nil
}

func (f *fakeSNAT) state() (string, []string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.primary, slices.Clone(f.cidrs), f.syncs
}

func TestSNATLoopWaitsForThePoolThenSyncs(t *testing.T) {
	installCheckInterval = 10 * time.Millisecond
	alloc := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.DefaultConfig()})
	fake := &fakeSNAT{}
	o := DefaultOptions()
	o.NonMasqueradeCIDRs = []string{"192.168.0.0/16"}
	o.SNATInterval = 10 * time.Millisecond
	d := Deps{NewSNAT: func(primary string, cidrs, _ []string) (SNAT, error) {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		fake.primary, fake.cidrs = primary, cidrs
		return fake, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { snatLoop(ctx, o, d, alloc, logr.Discard()); close(done) }()
	defer func() { cancel(); <-done }()

	time.Sleep(50 * time.Millisecond)
	if _, _, n := fake.state(); n != 0 {
		t.Fatalf("SNAT synced %d times before the pool named the primary IP", n)
	}
	alloc.UpdatePool(ipam.PoolState{Found: true, PrimaryIP: "10.0.0.4", VNetAddressSpace: []string{"10.0.0.0/16"}})
	eventuallyTrue(t, "SNAT syncs", func() bool { _, _, n := fake.state(); return n >= 2 })
	primary, cidrs, _ := fake.state()
	if primary != "10.0.0.4" || !slices.Equal(cidrs, []string{"10.0.0.0/16", "192.168.0.0/16"}) {
		t.Errorf("SNAT built for %s %v, want 10.0.0.4 and the VNet plus the configured CIDRs", primary, cidrs)
	}
}

func TestInstallLoopInstallsWhenReadyAndWithdrawsWhenNot(t *testing.T) {
	withdrawAfter, installCheckInterval = 50*time.Millisecond, 10*time.Millisecond
	alloc := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.DefaultConfig()})
	inst := &fakeInstaller{installed: true} // left by a previous run
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { installLoop(ctx, inst, alloc, logr.Discard()); close(done) }()
	defer func() { cancel(); <-done }()

	eventuallyTrue(t, "a stale configuration is withdrawn while the agent cannot serve", func() bool { return !inst.Installed() })
	alloc.UpdatePool(ipam.PoolState{Found: true, IPs: []string{"10.0.0.10"}})
	eventuallyTrue(t, "the plugin is installed once the pool has an IP", inst.Installed)
	alloc.UpdatePool(ipam.PoolState{Found: false})
	eventuallyTrue(t, "the configuration is withdrawn when the pool is gone", func() bool { return !inst.Installed() })
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}
