package gc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/fakeclock"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/store"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

func setup(t *testing.T, clk *fakeclock.Clock, pods ...string) *ipam.Allocator {
	t.Helper()
	a := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.Config{BatchSize: 1, MaxIPs: 250}, Now: clk.Now})
	a.UpdatePool(ipam.PoolState{Found: true, IPs: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}})
	for _, p := range pods {
		att := agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "c-" + p, IfName: "eth0"}, PodNamespace: "ns", PodName: p, PodUID: "uid-" + p}
		if p == "" {
			att = agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "c-anon", IfName: "eth0"}}
		}
		if _, err := a.Allocate(context.Background(), att); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// listed returns a PodLister serving the pods in set (keys are pod names in
// namespace "ns", with the UIDs setup gives them).
func listed(set map[string]bool) PodLister {
	return func(context.Context) ([]Pod, error) {
		var pods []Pod
		for name, ok := range set {
			if ok {
				pods = append(pods, Pod{Namespace: "ns", Name: name, UID: "uid-" + name})
			}
		}
		return pods, nil
	}
}

func held(a *ipam.Allocator) map[string]bool {
	out := map[string]bool{}
	for _, r := range a.Records() {
		out[r.ContainerID] = true
	}
	return out
}

func TestPodGCWaitsForTheGracePeriod(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := setup(t, clk, "alive", "gone", "")
	podsNow := map[string]bool{"alive": true}
	c := New(a, Config{Grace: time.Minute, Now: clk.Now, Pods: listed(podsNow)})

	steps := []struct {
		name    string
		advance time.Duration
		want    []string
	}{
		{"first sight of a missing pod starts the grace period", 0, []string{"c-alive", "c-gone", "c-anon"}},
		{"still within the grace period", 30 * time.Second, []string{"c-alive", "c-gone", "c-anon"}},
		{"after the grace period the allocation goes", 31 * time.Second, []string{"c-alive", "c-anon"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			clk.Advance(s.advance)
			if err := c.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			h := held(a)
			if len(h) != len(s.want) {
				t.Errorf("held %v, want %v", h, s.want)
			}
			for _, w := range s.want {
				if !h[w] {
					t.Errorf("%s was released, want it kept (held %v)", w, h)
				}
			}
		})
	}
}

// A force-deleted pod leaves the API at once while its sandbox may still be
// tearing down: its IP must stay held while the host veth (and the /32 route
// to it) exist, or the next ADD could take the IP while the old pod's route
// still points at the old veth.
func TestPodGCKeepsTheRecordWhileTheVethExists(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := setup(t, clk, "force-deleted", "fully-gone")
	veths := map[string]bool{vethname.VethName("c-force-deleted", "eth0"): true}
	c := New(a, Config{
		Grace:      time.Minute,
		Now:        clk.Now,
		Pods:       listed(nil),
		LinkExists: func(name string) (bool, error) { return veths[name], nil },
	})
	run := func() {
		t.Helper()
		if err := c.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	run()
	clk.Advance(2 * time.Minute)
	run()
	if h := held(a); !h["c-force-deleted"] || h["c-fully-gone"] {
		t.Fatalf("after the grace period held %v, want only c-force-deleted (its veth still exists)", h)
	}
	delete(veths, vethname.VethName("c-force-deleted", "eth0"))
	run()
	if h := held(a); h["c-force-deleted"] {
		t.Errorf("still held after its veth disappeared: %v", h)
	}
}

func TestPodGCKeepsTheRecordWhenTheVethCheckFails(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := setup(t, clk, "x")
	c := New(a, Config{
		Grace:      time.Minute,
		Now:        clk.Now,
		Pods:       listed(nil),
		LinkExists: func(string) (bool, error) { return false, fmt.Errorf("netlink is broken") },
	})
	_ = c.RunOnce(context.Background())
	clk.Advance(2 * time.Minute)
	if err := c.RunOnce(context.Background()); err == nil {
		t.Errorf("no error although the veth check failed")
	}
	if !held(a)["c-x"] {
		t.Errorf("released an allocation whose veth could not be checked")
	}
}

// A StatefulSet pod recreated under the same name is a new pod (new UID):
// the old one's allocation, whose DEL was lost, must not live on through
// the name.
func TestPodGCKeysPodsByUID(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := setup(t, clk, "web-0")
	legacy := agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "c-legacy", IfName: "eth0"}, PodNamespace: "ns", PodName: "db-0"}
	if _, err := a.Allocate(context.Background(), legacy); err != nil {
		t.Fatal(err)
	}
	pods := []Pod{{Namespace: "ns", Name: "web-0", UID: "uid-web-0-recreated"}, {Namespace: "ns", Name: "db-0", UID: "uid-db-0"}}
	c := New(a, Config{Grace: time.Minute, Now: clk.Now, Pods: func(context.Context) ([]Pod, error) { return pods, nil }})
	_ = c.RunOnce(context.Background())
	clk.Advance(2 * time.Minute)
	if err := c.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := held(a)
	if h["c-web-0"] {
		t.Errorf("the allocation of the replaced web-0 is still held: the recreated pod's name kept it")
	}
	if !h["c-legacy"] {
		t.Errorf("a record without a pod UID (runtime without K8S_POD_UID) was released although its pod exists by name")
	}
}

func TestPodGCForgetsAPodThatCameBack(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := setup(t, clk, "flaky")
	podsNow := map[string]bool{}
	c := New(a, Config{Grace: time.Minute, Now: clk.Now, Pods: listed(podsNow)})
	clk.Advance(2 * time.Minute)
	_ = c.RunOnce(context.Background()) // missing: starts the clock
	podsNow["flaky"] = true
	clk.Advance(50 * time.Second)
	_ = c.RunOnce(context.Background()) // back: clock reset
	delete(podsNow, "flaky")
	clk.Advance(50 * time.Second)
	_ = c.RunOnce(context.Background()) // missing again: new clock
	if !held(a)["c-flaky"] {
		t.Errorf("released although the pod was missing for less than the grace period at a stretch")
	}
}

func TestReconcileAtStart(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := setup(t, clk, "pod-and-veth", "veth-only", "pod-only", "neither")
	veths := map[string]bool{
		vethname.VethName("c-pod-and-veth", "eth0"): true,
		vethname.VethName("c-veth-only", "eth0"):    true,
	}
	pods := map[string]bool{"pod-and-veth": true, "pod-only": true}
	c := New(a, Config{
		Now:        clk.Now,
		Pods:       listed(pods),
		LinkExists: func(name string) (bool, error) { return veths[name], nil },
	})
	// Allocated long before this start (by the previous agent).
	clk.Advance(DefaultGrace)
	if err := c.ReconcileAtStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := held(a)
	for id, want := range map[string]bool{"c-pod-and-veth": true, "c-veth-only": true, "c-pod-only": true, "c-neither": false} {
		if h[id] != want {
			t.Errorf("%s held = %v, want %v", id, h[id], want)
		}
	}
}

func TestReconcileKeepsAllocationsWhenTheVethCheckFails(t *testing.T) {
	clk := fakeclock.New(time.Now())
	a := setup(t, clk, "x")
	c := New(a, Config{
		Pods:       listed(nil),
		LinkExists: func(string) (bool, error) { return false, fmt.Errorf("netlink is broken") },
	})
	if err := c.ReconcileAtStart(context.Background()); err == nil {
		t.Errorf("no error although the veth check failed")
	}
	if !held(a)["c-x"] {
		t.Errorf("released an allocation whose veth could not be checked")
	}
}

// TestReconcileAtStartDefersYoungAllocations: an allocation the previous
// agent made just before it died may belong to an ADD still in flight (the
// plugin got its answer and creates the veth after the new agent started):
// without pods to compare with (standalone, nerdctl) it is kept at start
// and released by RunOnce only if its veth is still missing after the
// grace period. An old allocation without a veth goes at start.
func TestReconcileAtStartDefersYoungAllocations(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.Config{BatchSize: 1, MaxIPs: 250}, Now: clk.Now})
	a.UpdatePool(ipam.PoolState{Found: true, IPs: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}})
	alloc := func(id string) {
		if _, err := a.Allocate(context.Background(), agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: id, IfName: "eth0"}}); err != nil {
			t.Fatal(err)
		}
	}
	alloc("c-old")
	clk.Advance(DefaultGrace)
	alloc("c-in-flight")
	alloc("c-failed")
	veths := map[string]bool{}
	c := New(a, Config{
		Now:        clk.Now,
		Pods:       listed(nil),
		LinkExists: func(name string) (bool, error) { return veths[name], nil },
	})
	clk.Advance(time.Second)
	if err := c.ReconcileAtStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := func(step string, ids ...string) {
		t.Helper()
		h := held(a)
		if len(h) != len(ids) {
			t.Errorf("%s: held %v, want %v", step, h, ids)
		}
		for _, id := range ids {
			if !h[id] {
				t.Errorf("%s: held %v, want %v", step, h, ids)
			}
		}
	}
	want("at start", "c-in-flight", "c-failed")
	// The in-flight ADD completes: its plugin creates the veth.
	veths[vethname.VethName("c-in-flight", "eth0")] = true
	clk.Advance(DefaultGrace / 2)
	if err := c.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want("within the grace period", "c-in-flight", "c-failed")
	clk.Advance(DefaultGrace / 2)
	if err := c.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want("after the grace period", "c-in-flight")
	// Checked once: from now on it is an allocation like any other, kept
	// until its DEL.
	delete(veths, vethname.VethName("c-in-flight", "eth0"))
	clk.Advance(DefaultGrace)
	if err := c.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want("later", "c-in-flight")
}
