package podattach_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/podattach"
	"github.com/nicpool/nicpool/nodeagent/poolsync"
	"github.com/nicpool/nicpool/nodeagent/store"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	asgWeb = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"
	asgDB  = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/db"
)

// eventually waits for cond; 30 s is far above the agent's 50 ms debounce
// and 100 ms resync, to absorb a loaded CI machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, what, cond)
}

// recorder keeps the Events it is given.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Eventf(regarding runtime.Object, _ runtime.Object, typ, reason, _, note string, args ...interface{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := ""
	if p, ok := regarding.(*corev1.Pod); ok {
		name = p.Name
	}
	r.events = append(r.events, fmt.Sprintf("%s %s %s: %s", name, typ, reason, fmt.Sprintf(note, args...)))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// agent is a node agent's allocator, pool syncer and attacher on st.
type agent struct {
	alloc    *ipam.Allocator
	attacher *podattach.Attacher
	events   *recorder
	stop     func()
}

func startAgent(t *testing.T, node string, st store.Store) *agent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := poolsync.NewCache(ctx, env.Config, env.Scheme, node)
	if err != nil {
		t.Fatal(err)
	}
	alloc := ipam.New(st, ipam.Config{Policy: pool.Config{WarmIPTarget: 0, MinIPTarget: 1, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: time.Hour}, AllocTimeout: time.Minute})
	direct, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	syncer := poolsync.New(poolsync.Config{NodeName: node, Cache: c, Client: direct, Allocator: alloc, Resync: 100 * time.Millisecond, Debounce: 20 * time.Millisecond, Log: testr.New(t)})
	att := podattach.New(podattach.Config{NodeName: node, Cache: c, Client: direct, Allocator: alloc, Recorder: rec, Resync: 100 * time.Millisecond, Log: testr.New(t)})
	var wg sync.WaitGroup
	wg.Go(func() { _ = c.Start(ctx) })
	wg.Go(func() { _ = syncer.Run(ctx) })
	wg.Go(func() {
		if err := att.Run(ctx); err != nil {
			t.Errorf("attacher: %v", err)
		}
	})
	a := &agent{alloc: alloc, attacher: att, events: rec, stop: func() { cancel(); wg.Wait() }}
	t.Cleanup(a.stop)
	return a
}

func getPool(t *testing.T, name string) *nicpoolv1.NodeIPPool {
	t.Helper()
	var np nicpoolv1.NodeIPPool
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &np); err != nil {
		t.Fatal(err)
	}
	return &np
}

// writeStatus plays the operator: change edits the pool's status.
func writeStatus(t *testing.T, name string, change func(*nicpoolv1.NodeIPPool)) {
	t.Helper()
	np := getPool(t, name)
	change(np)
	if err := env.Client.Status().Update(context.Background(), np); err != nil {
		t.Fatalf("write status of %s: %v", name, err)
	}
}

func newPod(t *testing.T, node, name string, ann map[string]string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p, client.GracePeriodSeconds(0)) })
	return p
}

func attachmentOf(p *corev1.Pod) agentapi.Attachment {
	return agentapi.Attachment{
		AttachmentKey: agentapi.AttachmentKey{ContainerID: "ctr-" + string(p.UID), IfName: "eth0"},
		PodNamespace:  p.Namespace, PodName: p.Name, PodUID: string(p.UID),
	}
}

func entryFor(np *nicpoolv1.NodeIPPool, ip string) *nicpoolv1.IPAttachment {
	for i := range np.Spec.Attachments {
		if string(np.Spec.Attachments[i].IP) == ip {
			return &np.Spec.Attachments[i]
		}
	}
	return nil
}

// TestAttachChangeDetachBeforeReuse drives one IP through a pod that asks
// for attachments, a change of its annotations, the pod's end and the next
// pod: the next pod gets the IP only after the operator has reported the
// detach done, also across an agent restart while the detach is pending.
func TestAttachChangeDetachBeforeReuse(t *testing.T) {
	ctx := context.Background()
	const node, ip = "attach-node", "10.9.1.10"
	if err := env.Client.Create(ctx, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: node}}); err != nil {
		t.Fatal(err)
	}
	st := store.NewMemStore()
	ag := startAgent(t, node, st)
	writeStatus(t, node, func(np *nicpoolv1.NodeIPPool) {
		np.Status.IPs = []nicpoolv1.PoolIP{{IP: ip, IPConfiguration: "nicpool-a"}}
		np.Status.SubnetCIDR, np.Status.PrimaryIP = "10.9.0.0/16", "10.9.0.4"
	})

	// Attach: the pod's annotations become the IP's entry at ADD.
	podA := newPod(t, node, "web-a", map[string]string{nicpoolv1.AnnotationApplicationSecurityGroups: asgWeb})
	eventually(t, "the agent can serve", func() bool { ok, _ := ag.alloc.Ready(); return ok })
	resp, err := ag.alloc.Allocate(ctx, attachmentOf(podA))
	if err != nil || resp.IP != ip {
		t.Fatalf("allocate for pod a: %v, %v", resp, err)
	}
	ag.attacher.Kick()
	eventually(t, "the pod's ASG is asked for its IP", func() bool {
		e := entryFor(getPool(t, node), ip)
		return e != nil && len(e.ApplicationSecurityGroups) == 1 && string(e.ApplicationSecurityGroups[0]) == asgWeb &&
			e.Pod != nil && e.Pod.UID == string(podA.UID)
	})

	// Change: a new annotation value is picked up from the watch.
	podA.Annotations[nicpoolv1.AnnotationApplicationSecurityGroups] = asgWeb + "," + asgDB
	podA.Annotations[nicpoolv1.AnnotationPublicIP] = "create"
	if err := env.Client.Update(ctx, podA); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change reaches the entry", func() bool {
		e := entryFor(getPool(t, node), ip)
		return e != nil && len(e.ApplicationSecurityGroups) == 2 && e.PublicIPAddress == "create"
	})
	writeStatus(t, node, func(np *nicpoolv1.NodeIPPool) {
		np.Status.Attachments = []nicpoolv1.IPAttachmentStatus{{IP: ip, State: nicpoolv1.AttachmentApplied,
			ApplicationSecurityGroups: []string{asgWeb, asgDB}, PublicIPAddress: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/nicpool-pip-x"}}
		np.Status.AttachmentsObservedGeneration = np.Generation
	})
	eventually(t, "the pod with a public IP is exempt from SNAT", func() bool {
		return len(ag.alloc.Pool().OwnPublicIP) == 1 && ag.alloc.Pool().OwnPublicIP[0] == ip
	})

	// Detach: the pod ends, its IP goes back, its entry asks for nothing.
	if err := env.Client.Delete(ctx, podA, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.alloc.Release(attachmentOf(podA).AttachmentKey); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entry asks for a detach", func() bool {
		e := entryFor(getPool(t, node), ip)
		return e != nil && e.Empty()
	})

	// The agent is killed and restarts with its record (the pod's IP gone
	// from it) while the detach is pending: the spec still holds the IP.
	ag.stop()
	ag = startAgent(t, node, st)

	// The next pod waits for the IP until the operator reports it clean.
	var detachReported atomic.Bool
	podB := newPod(t, node, "web-b", map[string]string{nicpoolv1.AnnotationPublicIP: "not-an-id"})
	got := make(chan string, 1)
	go func() {
		r, err := ag.alloc.Allocate(ctx, attachmentOf(podB))
		if err != nil {
			t.Errorf("allocate for pod b: %v", err)
			got <- ""
			return
		}
		if !detachReported.Load() {
			t.Errorf("pod b got %s before the operator reported the detach of pod a's attachments", r.IP)
		}
		got <- r.IP
	}()
	eventually(t, "pod b waits for the pool's one IP", func() bool { s := ag.alloc.Snapshot(); return s.Pending == 1 && s.PoolIPs == 1 })
	if s := ag.alloc.Snapshot(); s.PoolIPs != 1 || s.Free != 0 {
		t.Fatalf("the restarted agent counts %d pool IPs, %d free; want the one IP held back for its detach", s.PoolIPs, s.Free)
	}
	detachReported.Store(true)
	writeStatus(t, node, func(np *nicpoolv1.NodeIPPool) {
		np.Status.Attachments = nil
		np.Status.AttachmentsObservedGeneration = np.Generation
	})
	select {
	case gotIP := <-got:
		if gotIP != ip {
			t.Fatalf("pod b got %q, want %s", gotIP, ip)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("pod b got no IP 45 s after the detach was reported")
	}
	eventually(t, "the clean IP's entry is dropped", func() bool { return entryFor(getPool(t, node), ip) == nil })

	// An invalid annotation is reported on the pod, and nothing is asked.
	ag.attacher.Kick()
	eventually(t, "an Event on pod b names the bad annotation", func() bool {
		for _, e := range ag.events.list() {
			if e == "web-b Warning InvalidAttachmentAnnotation: annotation network.nicpool.io/public-ip ignored: \"not-an-id\" is neither \"create\" nor a public IP address ID such as /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Network/publicIPAddresses/<name>" {
				return true
			}
		}
		return false
	})
	if e := entryFor(getPool(t, node), ip); e != nil {
		t.Errorf("an invalid annotation made an entry: %+v", e)
	}
}
