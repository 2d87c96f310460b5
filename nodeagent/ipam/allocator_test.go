package ipam

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/fakeclock"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
)

func newClock() *fakeclock.Clock { return fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

// ips returns the first n addresses of the test pool.
func ips(n int) []string {
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
	}
	return out
}

func att(i int) agentapi.Attachment {
	return agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: fmt.Sprintf("c%04d", i), IfName: "eth0"}, PodNamespace: "ns", PodName: fmt.Sprint("p", i)}
}

var policy = pool.Config{WarmIPTarget: 2, MinIPTarget: 2, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: time.Minute}

func codeOf(err error) uint {
	var e *agentapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// operator plays the operator: every time the agent's demand changes it
// grants what is requested (up to maxIPs), in steps of grantBatch, and
// removes IPs listed in ipsNotInUse.
func operator(ctx context.Context, a *Allocator, maxIPs, grantBatch int, plans chan<- SpecPlan) {
	granted := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.DemandChanged():
		}
		plan, ok := a.PlanSpec()
		if !ok {
			continue
		}
		if plans != nil {
			plans <- plan
		}
		want := min(plan.Requested, maxIPs)
		if granted < want {
			granted = min(granted+grantBatch, want)
		}
		a.UpdatePool(PoolState{Found: true, IPs: ips(granted), Requested: plan.Requested})
	}
}

func TestBurstOf250OnAnEmptyNode(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy, AllocTimeout: time.Minute})
	a.UpdatePool(PoolState{Found: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	plans := make(chan SpecPlan, 10000)
	go operator(ctx, a, 250, 64, plans)

	const n = 250
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := a.Allocate(ctx, att(i))
			if err != nil {
				t.Errorf("allocation %d: %v", i, err)
				return
			}
			got[i] = resp.IP
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, ip := range got {
		if prev, dup := seen[ip]; dup && ip != "" {
			t.Fatalf("IP %s given to allocations %d and %d", ip, prev, i)
		}
		seen[ip] = i
	}
	if len(seen) != n {
		t.Errorf("%d distinct IPs for %d allocations", len(seen), n)
	}
	maxReq := 0
	for len(plans) > 0 {
		maxReq = max(maxReq, (<-plans).Requested)
	}
	if maxReq != 250 {
		t.Errorf("the agent never asked for the whole burst: max requestedIPCount %d, want 250", maxReq)
	}
}

func TestAllocateIsIdempotent(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy})
	a.UpdatePool(PoolState{Found: true, IPs: ips(10)})
	var wg sync.WaitGroup
	results := make([]string, 20)
	for i := range results {
		wg.Go(func() {
			resp, err := a.Allocate(context.Background(), att(7))
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = resp.IP
		})
	}
	wg.Wait()
	for _, ip := range results {
		if ip != results[0] {
			t.Fatalf("the same key got different IPs: %v", results)
		}
	}
	if n := len(a.Records()); n != 1 {
		t.Errorf("%d records for one key", n)
	}
}

func TestNeverHandsOutIPsNotInUseOrOutsideStatus(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy, AllocTimeout: 50 * time.Millisecond})
	all := ips(3)
	a.UpdatePool(PoolState{Found: true, IPs: all, NotInUse: all[:2]})
	resp, err := a.Allocate(context.Background(), att(1))
	if err != nil || resp.IP != all[2] {
		t.Fatalf("Allocate = %v, %v; want %s, the only IP not in ipsNotInUse", resp, err, all[2])
	}
	_, err = a.Allocate(context.Background(), att(2))
	if codeOf(err) != agentapi.CodeTryAgainLater {
		t.Fatalf("Allocate with no usable IP = %v, want code %d", err, agentapi.CodeTryAgainLater)
	}
	if s := a.Snapshot(); s.Pending != 0 {
		t.Errorf("%d waiters left after the timeout", s.Pending)
	}
}

func TestWaitRespectsContext(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy, AllocTimeout: time.Hour})
	a.UpdatePool(PoolState{Found: true})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-a.DemandChanged()
		cancel()
	}()
	_, err := a.Allocate(ctx, att(1))
	if codeOf(err) != agentapi.CodeTryAgainLater {
		t.Fatalf("Allocate with a cancelled context = %v, want code %d", err, agentapi.CodeTryAgainLater)
	}
}

func TestReleasedIPIsReusedLast(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy})
	a.UpdatePool(PoolState{Found: true, IPs: ips(3)})
	first, _ := a.Allocate(context.Background(), att(1))
	if _, err := a.Release(att(1).AttachmentKey); err != nil {
		t.Fatal(err)
	}
	var order []string
	for i := 2; i <= 4; i++ {
		r, err := a.Allocate(context.Background(), att(i))
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, r.IP)
	}
	if order[2] != first.IP || slices.Contains(order[:2], first.IP) {
		t.Errorf("allocation order %v reused the just-released %s before the others", order, first.IP)
	}
}

func TestStoreFailureIsInternalErrorAndHandsOutNothing(t *testing.T) {
	st := store.NewMemStore()
	st.FailWrites = errors.New("disk full")
	a := New(st, Config{Policy: policy})
	a.UpdatePool(PoolState{Found: true, IPs: ips(3)})
	_, err := a.Allocate(context.Background(), att(1))
	if codeOf(err) != agentapi.CodeInternal {
		t.Fatalf("Allocate with a failing store = %v, want code %d", err, agentapi.CodeInternal)
	}
	if len(a.Records()) != 0 {
		t.Errorf("a failed write left a record")
	}
}

func TestValidation(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy})
	tests := []struct {
		name string
		att  agentapi.Attachment
	}{
		{"no container ID", agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{IfName: "eth0"}}},
		{"no ifname", agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "x"}}},
		{"ifname too long", agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "x", IfName: "eth0123456789012"}}},
		{"slash in container ID", agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "../x", IfName: "eth0"}}},
		{"pod name without namespace", agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "x", IfName: "eth0"}, PodName: "p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.Allocate(context.Background(), tt.att); codeOf(err) != agentapi.CodeInvalidFields {
				t.Errorf("Allocate = %v, want code %d", err, agentapi.CodeInvalidFields)
			}
		})
	}
}

func TestSameIPAfterRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	a := New(st, Config{Policy: policy})
	a.UpdatePool(PoolState{Found: true, IPs: ips(5)})
	first, err := a.Allocate(context.Background(), att(1))
	if err != nil {
		t.Fatal(err)
	}
	st2, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := New(st2, Config{Policy: policy})
	b.UpdatePool(PoolState{Found: true, IPs: ips(5)})
	again, err := b.Allocate(context.Background(), att(1))
	if err != nil || again.IP != first.IP {
		t.Errorf("after a restart the same key got %v, %v; want %s", again, err, first.IP)
	}
	other, err := b.Allocate(context.Background(), att(2))
	if err != nil || other.IP == first.IP {
		t.Errorf("after a restart another key got %v, %v; the restored IP %s must stay taken", other, err, first.IP)
	}
}

// TestFullNodeSaysSo tells a pod on a node at its maximum why it gets no IP,
// and a pod on a node still growing that the pool is growing.
func TestFullNodeSaysSo(t *testing.T) {
	tests := []struct {
		name    string
		maxIPs  int
		poolIPs int
		want    string
	}{
		{"node at its maximum", 3, 3, "its maximum (--max-ips"},
		{"pool still growing", 10, 3, "waiting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := policy
			p.MaxIPs = tc.maxIPs
			a := New(store.NewMemStore(), Config{Policy: p, AllocTimeout: 20 * time.Millisecond})
			a.UpdatePool(PoolState{Found: true, IPs: ips(tc.poolIPs)})
			for i := range tc.poolIPs {
				if _, err := a.Allocate(context.Background(), att(i)); err != nil {
					t.Fatalf("Allocate %d: %v", i, err)
				}
			}
			_, err := a.Allocate(context.Background(), att(tc.poolIPs))
			if codeOf(err) != agentapi.CodeTryAgainLater || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Allocate beyond the pool = %v, want code %d mentioning %q", err, agentapi.CodeTryAgainLater, tc.want)
			}
		})
	}
}
