package poolsource

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// fakeSource serves a fixed pool and records the requests.
type fakeSource struct {
	mu       sync.Mutex
	readOnly bool
	observed int
	requests []ipam.SpecPlan
	// stale makes the first n requests return ErrStale.
	stale int
	seen  chan struct{}
}

func (f *fakeSource) Observe(context.Context) (ipam.PoolState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observed++
	return ipam.PoolState{Found: true, IPs: []string{"10.0.0.5", "10.0.0.6", "10.0.0.7"}, SubnetCIDR: "10.0.0.0/24", PrimaryIP: "10.0.0.4"}, nil
}

func (f *fakeSource) Request(_ context.Context, _ ipam.PoolState, plan ipam.SpecPlan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, plan)
	select {
	case f.seen <- struct{}{}:
	default:
	}
	if f.stale > 0 {
		f.stale--
		return ErrStale
	}
	return nil
}

func (f *fakeSource) ReadOnly() bool { return f.readOnly }

func newAlloc() *ipam.Allocator {
	// Cooldown 0 and no warm target: every idle IP is released at once by
	// a source that plans.
	return ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.Config{BatchSize: 1, MaxIPs: 250, MinIPTarget: 0, WarmIPTarget: 0}})
}

// A read-only source is never asked to plan: its idle IPs stay usable.
func TestReadOnlySourceKeepsIdleIPs(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		src := &fakeSource{readOnly: readOnly, seen: make(chan struct{}, 10)}
		alloc := newAlloc()
		for range 3 {
			if err := SyncOnce(context.Background(), src, alloc); err != nil {
				t.Fatal(err)
			}
		}
		usable := alloc.Snapshot().Usable
		switch {
		case readOnly && (usable != 3 || len(src.requests) != 0):
			t.Errorf("read-only: %d usable, %d requests; want 3 and none", usable, len(src.requests))
		case !readOnly && (usable != 0 || len(src.requests) == 0):
			// The control: the same policy over a writable source gives
			// the idle IPs back, so the read-only case above means something.
			t.Errorf("writable: %d usable, %d requests; want 0 and some", usable, len(src.requests))
		}
	}
}

// ErrStale makes Run observe and request again at once, with no event and
// long before the resync.
func TestRunRetriesAStaleRequestAtOnce(t *testing.T) {
	src := &fakeSource{stale: 1, seen: make(chan struct{}, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, src, Config{Allocator: newAlloc(), Resync: time.Hour, Debounce: time.Millisecond, Log: logr.Discard()})
	}()
	for i := range 2 {
		select {
		case <-src.seen:
		case <-time.After(time.Minute): // generous: a loaded CI machine
			t.Fatalf("request %d never came; a stale request waited for the resync", i+1)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.observed < 2 {
		t.Errorf("observed %d times, want a fresh read before the retried request", src.observed)
	}
}
