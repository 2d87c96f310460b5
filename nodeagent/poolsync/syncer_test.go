package poolsync

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/fakeclock"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/store"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, cond)
}

// agent starts the cache and the syncer for node and returns the allocator.
func agent(t *testing.T, node string, clock *fakeclock.Clock) (*ipam.Allocator, client.Reader) {
	return agentAs(t, env.Config, node, clock)
}

// agentAs is agent with the API identity of cfg.
func agentAs(t *testing.T, cfg *rest.Config, node string, clock *fakeclock.Clock) (*ipam.Allocator, client.Reader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := NewCache(ctx, cfg, env.Scheme, node)
	if err != nil {
		t.Fatal(err)
	}
	alloc := ipam.New(store.NewMemStore(), ipam.Config{
		Policy:       pool.Config{WarmIPTarget: 2, MinIPTarget: 2, BatchSize: 2, MaxIPs: 250, ReleaseCooldown: time.Minute},
		AllocTimeout: 30 * time.Second,
		Now:          clock.Now,
	})
	direct, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{NodeName: node, Cache: c, Client: direct, Allocator: alloc, Resync: 100 * time.Millisecond, Debounce: 20 * time.Millisecond, Log: testr.New(t)})
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Start(ctx) })
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Errorf("syncer: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return alloc, c
}

func getPool(t *testing.T, name string) *nicpoolv1.NodeIPPool {
	t.Helper()
	var np nicpoolv1.NodeIPPool
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &np); err != nil {
		t.Fatal(err)
	}
	return &np
}

// grant plays the operator: status.ips becomes ips.
func grant(t *testing.T, name string, ips []string) {
	t.Helper()
	np := getPool(t, name)
	np.Status.IPs = nil
	for i, ip := range ips {
		np.Status.IPs = append(np.Status.IPs, nicpoolv1.PoolIP{IP: nicpoolv1.IPv4Address(ip), IPConfiguration: fmt.Sprintf("nicpool-%d", i)})
	}
	np.Status.AllocatedIPCount = int32(len(ips))
	np.Status.SubnetCIDR = "10.9.0.0/16"
	np.Status.PrimaryIP = "10.9.0.4"
	if err := env.Client.Status().Update(context.Background(), np); err != nil {
		t.Fatalf("write status.ips: %v", err)
	}
}

func addrs(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf("10.9.1.%d", i))
	}
	return out
}

func TestAgentDrivesThePoolOnTheRealAPIServer(t *testing.T) {
	ctx := context.Background()
	for _, n := range []string{"node-a", "node-b"} {
		create(t, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	clock := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	alloc, _ := agent(t, "node-a", clock)

	eventually(t, "the agent asks for the minimum", func() bool { return getPool(t, "node-a").Spec.RequestedIPCount == 2 })
	if ok, _ := alloc.Ready(); ok {
		t.Fatal("ready before the pool has any IP")
	}
	grant(t, "node-a", addrs(10, 2))
	eventually(t, "the agent is ready", func() bool { ok, _ := alloc.Ready(); return ok })

	// Three pods at once: the third waits while the agent asks for more.
	var wg sync.WaitGroup
	got := make([]string, 3)
	for i := range 3 {
		wg.Go(func() {
			r, err := alloc.Allocate(ctx, agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: fmt.Sprint("c", i), IfName: "eth0"}})
			if err != nil {
				t.Errorf("allocate %d: %v", i, err)
				return
			}
			got[i] = r.IP
		})
	}
	eventually(t, "the agent asks for used + pending + warm", func() bool { return getPool(t, "node-a").Spec.RequestedIPCount >= 6 })
	grant(t, "node-a", addrs(10, 6))
	wg.Wait()
	slices.Sort(got)
	if len(slices.Compact(slices.Clone(got))) != 3 || slices.Contains(got, "") {
		t.Fatalf("allocations got %v, want 3 distinct IPs", got)
	}

	// Pods go away; after the cooldown the idle IPs go back in two phases.
	for i := range 3 {
		if _, err := alloc.Release(agentapi.AttachmentKey{ContainerID: fmt.Sprint("c", i), IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	var released []string
	eventually(t, "the agent lists idle IPs in ipsNotInUse", func() bool {
		np := getPool(t, "node-a")
		released = make([]string, 0, len(np.Spec.IPsNotInUse))
		for _, ip := range np.Spec.IPsNotInUse {
			released = append(released, string(ip))
		}
		return len(released) == 4 && np.Spec.RequestedIPCount == 2
	})
	var kept []string
	for _, ip := range addrs(10, 6) {
		if !slices.Contains(released, ip) {
			kept = append(kept, ip)
		}
	}
	grant(t, "node-a", kept) // phase 2: the operator removed them
	eventually(t, "the agent drops removed IPs from ipsNotInUse", func() bool { return len(getPool(t, "node-a").Spec.IPsNotInUse) == 0 })
	if s := alloc.Snapshot(); s.Usable != 2 {
		t.Errorf("usable IPs after the release = %d, want 2", s.Usable)
	}
	if other := getPool(t, "node-b"); other.Spec.RequestedIPCount != 0 {
		t.Errorf("the agent of node-a wrote node-b's pool: %+v", other.Spec)
	}

	// The pool disappears: the agent stops being ready.
	if err := env.Client.Delete(ctx, getPool(t, "node-a")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent is not ready without its pool", func() bool { ok, _ := alloc.Ready(); return !ok })
}

func TestCacheHoldsOnlyThisNodesPods(t *testing.T) {
	ctx := context.Background()
	for _, p := range []struct{ name, node string }{{"on-c", "node-c"}, {"elsewhere", "node-d"}} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "default"},
			Spec:       corev1.PodSpec{NodeName: p.node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		create(t, pod)
	}
	_, reader := agent(t, "node-c", fakeclock.New(time.Now()))
	eventually(t, "the pod cache lists the node's pod", func() bool {
		pods, err := PodsOnNode(ctx, reader)
		return err == nil && pods["default/on-c"] && !pods["default/elsewhere"] && len(pods) == 1
	})
}

// agentRole mirrors the kubebuilder RBAC markers of this package (the
// nicpool-agent ClusterRole controller-gen generates).
var agentRole = []rbacv1.PolicyRule{
	{APIGroups: []string{nicpoolv1.GroupVersion.Group}, Resources: []string{"nodeippools"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
}

func TestAgentWorksWithOnlyItsRole(t *testing.T) {
	const user = "nicpool-agent-rbac-test"
	objs := []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "nicpool-agent-test"}, Rules: agentRole},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "nicpool-agent-test"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nicpool-agent-test"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		},
		&nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: "node-rbac"}},
	}
	for _, o := range objs {
		create(t, o)
	}
	u, err := env.ControlPlane().ControlPlane.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	alloc, _ := agentAs(t, u.Config(), "node-rbac", fakeclock.New(time.Now()))
	eventually(t, "the least-privileged agent writes its request", func() bool { return getPool(t, "node-rbac").Spec.RequestedIPCount == 2 })
	grant(t, "node-rbac", addrs(100, 2))
	eventually(t, "the least-privileged agent is ready", func() bool { ok, _ := alloc.Ready(); return ok })
}

// create creates obj and deletes it when the test ends, so the tests can
// run again (-count) against the same control plane.
func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.IgnoreNotFound(env.Client.Delete(context.Background(), obj, client.GracePeriodSeconds(0)))
	})
}

// TestBoundPodsRaiseTheRequest: the pods bound to the node that need a pod
// IP are asked for before any of their ADDs arrives (a burst in one write);
// host-network and finished pods, and other nodes' pods, are not.
func TestBoundPodsRaiseTheRequest(t *testing.T) {
	ctx := context.Background()
	create(t, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: "node-e"}})
	pod := func(name, node string, hostNet bool) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec:       corev1.PodSpec{NodeName: node, HostNetwork: hostNet, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
	}
	for i := range 6 {
		create(t, pod(fmt.Sprint("e-", i), "node-e", false))
	}
	create(t, pod("e-hostnet", "node-e", true))
	create(t, pod("f-0", "node-f", false))
	done := pod("e-done", "node-e", false)
	create(t, done)
	done.Status.Phase = corev1.PodSucceeded
	if err := env.Client.Status().Update(ctx, done); err != nil {
		t.Fatal(err)
	}
	agent(t, "node-e", fakeclock.New(time.Now()))
	var got int32
	eventually(t, "the agent writes its request", func() bool {
		got = getPool(t, "node-e").Spec.RequestedIPCount
		return got != 0
	})
	// 6 pods without an IP + warm 2 = 8 (batch 2); counting the host-network
	// or the finished pod would make it 10.
	if got != 8 {
		t.Fatalf("requestedIPCount = %d with 6 pods bound that need an IP, want 8", got)
	}
}
