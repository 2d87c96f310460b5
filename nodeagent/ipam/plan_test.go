package ipam

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nicpool/nicpool/nodeagent/store"
)

func TestReleaseIsTwoPhase(t *testing.T) {
	clock := newClock()
	a := New(store.NewMemStore(), Config{Policy: policy, Now: clock.Now, AllocTimeout: 50 * time.Millisecond})
	all := ips(10)
	a.UpdatePool(PoolState{Found: true, IPs: all, Requested: 10})
	held := map[string]bool{}
	for i := range 3 {
		r, err := a.Allocate(context.Background(), att(i))
		if err != nil {
			t.Fatal(err)
		}
		held[r.IP] = true
	}

	plan, _ := a.PlanSpec()
	if plan.Requested != 5 || len(plan.NotInUse) != 0 {
		t.Fatalf("plan before the cooldown = %+v, want requested 5 and nothing released", plan)
	}

	clock.Advance(2 * time.Minute)
	plan, _ = a.PlanSpec()
	if len(plan.NotInUse) != 5 {
		t.Fatalf("plan after the cooldown releases %v, want 5 IPs (10 usable - target 5)", plan.NotInUse)
	}
	for _, ip := range plan.NotInUse {
		if held[ip] {
			t.Fatalf("held IP %s offered back", ip)
		}
	}
	// Phase 1 is local before the spec is written: the withheld IPs are
	// never handed out, even before the spec shows them.
	var got []string
	for i := 3; i < 5; i++ {
		r, err := a.Allocate(context.Background(), att(i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.IP)
	}
	if _, err := a.Allocate(context.Background(), att(9)); err == nil {
		t.Fatal("allocated an IP although every usable IP is held or released")
	}
	for _, ip := range got {
		if slices.Contains(plan.NotInUse, ip) {
			t.Fatalf("handed out %s, which is being released", ip)
		}
	}

	// The spec now carries them (phase 1 durable); still withheld.
	a.UpdatePool(PoolState{Found: true, IPs: all, NotInUse: plan.NotInUse, Requested: plan.Requested})
	again, _ := a.PlanSpec()
	if !slices.Equal(again.NotInUse, plan.NotInUse) {
		t.Errorf("replan after the spec write = %v, want %v", again.NotInUse, plan.NotInUse)
	}

	// Phase 2: the operator removed them from status.ips; phase 3: the
	// agent drops them from ipsNotInUse.
	var left []string
	for _, ip := range all {
		if !slices.Contains(plan.NotInUse, ip) {
			left = append(left, ip)
		}
	}
	a.UpdatePool(PoolState{Found: true, IPs: left, NotInUse: plan.NotInUse, Requested: plan.Requested})
	final, _ := a.PlanSpec()
	if len(final.NotInUse) != 0 {
		t.Errorf("ipsNotInUse after the operator removed the IPs = %v, want empty", final.NotInUse)
	}
}

func TestPlanNeverListsAHeldIP(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy})
	all := ips(2)
	a.UpdatePool(PoolState{Found: true, IPs: all})
	r, err := a.Allocate(context.Background(), att(1))
	if err != nil {
		t.Fatal(err)
	}
	// Someone else listed the held IP in the spec: the agent's plan drops it.
	a.UpdatePool(PoolState{Found: true, IPs: all, NotInUse: []string{r.IP}})
	plan, _ := a.PlanSpec()
	if slices.Contains(plan.NotInUse, r.IP) {
		t.Errorf("plan lists held IP %s in ipsNotInUse", r.IP)
	}
}

func TestNoReleaseSoonAfterScaleUp(t *testing.T) {
	clock := newClock()
	a := New(store.NewMemStore(), Config{Policy: policy, Now: clock.Now})
	a.UpdatePool(PoolState{Found: true, Requested: 0})
	if plan, _ := a.PlanSpec(); plan.Requested != 2 {
		t.Fatalf("requested on an empty node = %d, want the minimum 2", plan.Requested)
	}
	clock.Advance(30 * time.Second)
	a.UpdatePool(PoolState{Found: true, IPs: ips(10), Requested: 2})
	clock.Advance(45 * time.Second) // idle 45s, scale-up 75s ago
	if plan, _ := a.PlanSpec(); len(plan.NotInUse) != 0 {
		t.Errorf("released %v before the IPs were idle for the cooldown", plan.NotInUse)
	}
	clock.Advance(time.Minute)
	if plan, _ := a.PlanSpec(); len(plan.NotInUse) != 8 {
		t.Errorf("released %v after the cooldown, want 8", plan.NotInUse)
	}
}

func TestReadiness(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy})
	steps := []struct {
		name  string
		state *PoolState
		want  bool
	}{
		{"before the first sync", nil, false},
		{"pool missing", &PoolState{}, false},
		{"pool without IPs", &PoolState{Found: true}, false},
		{"pool with IPs all not in use", &PoolState{Found: true, IPs: ips(1), NotInUse: ips(1)}, false},
		{"pool with a usable IP", &PoolState{Found: true, IPs: ips(1)}, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.state != nil {
				a.UpdatePool(*s.state)
			}
			if got, reason := a.Ready(); got != s.want {
				t.Errorf("Ready() = %v (%s), want %v", got, reason, s.want)
			}
		})
	}
}

// TestFairShareReleasesSurplusAtOnce: when the operator publishes a fair
// share below what the node holds, free IPs above it go back at once (no
// cooldown) so the VNet quota reaches starved nodes; held IPs never go, and
// the request stays the node's full demand (shares are computed from it).
func TestFairShareReleasesSurplusAtOnce(t *testing.T) {
	clock := newClock()
	a := New(store.NewMemStore(), Config{Policy: policy, Now: clock.Now, AllocTimeout: 50 * time.Millisecond})
	all := ips(10)
	a.UpdatePool(PoolState{Found: true, IPs: all, Requested: 10})
	held := map[string]bool{}
	for i := range 6 {
		r, err := a.Allocate(context.Background(), att(i))
		if err != nil {
			t.Fatal(err)
		}
		held[r.IP] = true
	}
	if plan, _ := a.PlanSpec(); len(plan.NotInUse) != 0 {
		t.Fatalf("without a fair share the plan releases %v within the cooldown, want nothing", plan.NotInUse)
	}
	share := 4
	a.UpdatePool(PoolState{Found: true, IPs: all, Requested: 10, FairShare: &share})
	plan, _ := a.PlanSpec()
	if len(plan.NotInUse) != 4 {
		t.Fatalf("with a fair share of 4 and 6 held the plan releases %v, want the 4 free IPs at once", plan.NotInUse)
	}
	for _, ip := range plan.NotInUse {
		if held[ip] {
			t.Fatalf("held IP %s offered back", ip)
		}
	}
	if plan.Requested < 6 {
		t.Errorf("requested %d, want the node's demand (at least the 6 held), not the share", plan.Requested)
	}
}

// TestBoundPodsAreDemand: pods bound to the node count as pending demand
// before their ADDs arrive, so a burst is asked for at once; pods that
// already hold an IP are not counted twice, and waiting allocations still
// count when they are more.
func TestBoundPodsAreDemand(t *testing.T) {
	clock := newClock()
	a := New(store.NewMemStore(), Config{Policy: policy, Now: clock.Now, AllocTimeout: time.Second})
	a.UpdatePool(PoolState{Found: true, IPs: ips(10), Requested: 10})
	if plan, _ := a.PlanSpec(); plan.Requested != 2 {
		t.Fatalf("idle node requests %d, want the minimum 2", plan.Requested)
	}
	a.SetBoundPods(250)
	if plan, _ := a.PlanSpec(); plan.Requested != 250 {
		t.Fatalf("with 250 pods bound and none started the node requests %d, want 250 (clamped by max IPs)", plan.Requested)
	}
	a.SetBoundPods(40)
	for i := range 3 {
		if _, err := a.Allocate(context.Background(), att(i)); err != nil {
			t.Fatal(err)
		}
	}
	// 3 used, 37 bound pods without an IP, warm 2.
	if plan, _ := a.PlanSpec(); plan.Requested != 42 {
		t.Fatalf("with 40 pods bound, 3 holding IPs, the node requests %d, want 3 + 37 + 2 = 42", plan.Requested)
	}
	a.SetBoundPods(3)
	if plan, _ := a.PlanSpec(); plan.Requested != 5 {
		t.Fatalf("with every bound pod holding its IP the node requests %d, want 3 + 2 = 5", plan.Requested)
	}
}
