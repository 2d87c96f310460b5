package ipam

import (
	"context"
	"testing"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// heldStore is a MemStore whose writes for one container wait until
// released, as a slow fsync would.
type heldStore struct {
	*store.MemStore
	container string
	entered   chan struct{}
	release   chan struct{}
}

func (h *heldStore) hold(key agentapi.AttachmentKey) {
	if key.ContainerID == h.container {
		h.entered <- struct{}{}
		<-h.release
	}
}

func (h *heldStore) Add(rec store.Record) (store.Record, error) {
	h.hold(rec.AttachmentKey)
	return h.MemStore.Add(rec)
}

func (h *heldStore) Remove(key agentapi.AttachmentKey) (store.Record, bool, error) {
	h.hold(key)
	return h.MemStore.Remove(key)
}

func newHeldStore(container string) *heldStore {
	return &heldStore{MemStore: store.NewMemStore(), container: container, entered: make(chan struct{}, 10), release: make(chan struct{})}
}

// While one allocation's store write is in flight, other attachments'
// allocations and releases go ahead (their writes overlap, so the disk
// store can group them), never getting the IP being written.
func TestAllocationsOverlapAStoreWriteInFlight(t *testing.T) {
	st := newHeldStore(att(0).ContainerID)
	a := New(st, Config{Policy: policy, AllocTimeout: time.Minute})
	a.UpdatePool(PoolState{Found: true, IPs: ips(20)})
	ctx := context.Background()
	first := make(chan string, 1)
	go func() {
		resp, err := a.Allocate(ctx, att(0))
		if err != nil {
			t.Error(err)
		}
		first <- resp.IP
	}()
	<-st.entered
	others := map[string]bool{}
	for i := 1; i < 11; i++ {
		resp, err := a.Allocate(ctx, att(i))
		if err != nil {
			t.Fatalf("allocation %d while another's write was in flight: %v", i, err)
		}
		others[resp.IP] = true
	}
	if ip, err := a.Release(att(5).AttachmentKey); err != nil || ip == "" {
		t.Fatalf("release while another's write was in flight = %q, %v", ip, err)
	}
	close(st.release)
	ip0 := <-first
	if others[ip0] {
		t.Errorf("IP %s given to the attachment being written and to another", ip0)
	}
	if len(others) != 10 {
		t.Errorf("%d distinct IPs for 10 allocations", len(others))
	}
}

// Requests for one attachment stay in order: a second ADD and a DEL of a
// key whose allocation is being written wait for it, and then see it.
func TestSameKeyWaitsForItsWriteInFlight(t *testing.T) {
	st := newHeldStore(att(0).ContainerID)
	a := New(st, Config{Policy: policy, AllocTimeout: time.Minute})
	a.UpdatePool(PoolState{Found: true, IPs: ips(5)})
	ctx := context.Background()
	results := make(chan string, 2)
	go func() {
		resp, err := a.Allocate(ctx, att(0))
		if err != nil {
			t.Error(err)
		}
		results <- resp.IP
	}()
	<-st.entered
	go func() {
		resp, err := a.Allocate(ctx, att(0))
		if err != nil {
			t.Error(err)
		}
		results <- resp.IP
	}()
	released := make(chan string, 1)
	st.release <- struct{}{}
	ip1, ip2 := <-results, <-results
	if ip1 == "" || ip1 != ip2 {
		t.Fatalf("two ADDs of one key got %q and %q, want one IP", ip1, ip2)
	}
	go func() {
		ip, err := a.Release(att(0).AttachmentKey)
		if err != nil {
			t.Error(err)
		}
		released <- ip
	}()
	<-st.entered
	if _, err := a.Allocate(ctx, att(1)); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Records()); n != 2 {
		t.Errorf("%d records while the release is in flight, want 2 (its IP still held)", n)
	}
	close(st.release)
	if ip := <-released; ip != ip1 {
		t.Errorf("release returned %q, want %q", ip, ip1)
	}
}
