package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// fakeInstaller records what the agent asked of the CNI installer.
type fakeInstaller struct {
	mu        sync.Mutex
	installed bool
}

func (f *fakeInstaller) Install() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installed = true
	return nil
}
func (f *fakeInstaller) Withdraw() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installed = false
	return nil
}
func (f *fakeInstaller) Installed() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.installed }

// playOperator grants what the pool requests, 64 IPs per step, until ctx ends.
func playOperator(ctx context.Context, t *testing.T, name string) {
	for ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		var np nicpoolv1.NodeIPPool
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, &np); err != nil {
			continue
		}
		have, want := len(np.Status.IPs), int(np.Spec.RequestedIPCount)
		if have >= want {
			continue
		}
		for i := have; i < min(want, have+64); i++ {
			np.Status.IPs = append(np.Status.IPs, nicpoolv1.PoolIP{IP: nicpoolv1.IPv4Address(fmt.Sprintf("10.20.%d.%d", i/200, i%200+1)), IPConfiguration: fmt.Sprint("nicpool-", i)})
		}
		np.Status.AllocatedIPCount = int32(len(np.Status.IPs))
		np.Status.SubnetCIDR = "10.20.0.0/16"
		np.Status.PrimaryIP = "10.20.255.4"
		if err := env.Client.Status().Update(ctx, &np); err != nil && ctx.Err() == nil {
			t.Logf("operator: %v", err)
		}
	}
}

func TestAgentServes250PodsBurstOnAnEmptyNode(t *testing.T) {
	const node = "burst-node"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	create(t, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: node}})
	dir, err := os.MkdirTemp("", "npagent")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	o := DefaultOptions()
	o.NodeName, o.SocketPath, o.StateDir = node, filepath.Join(dir, "agent.sock"), filepath.Join(dir, "state")
	o.MetricsAddr, o.HealthAddr = "", ""
	inst := &fakeInstaller{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, o, Deps{RestConfig: env.Config, Installer: inst, Registry: prometheus.NewRegistry(), Log: testr.New(t)})
	}()
	go playOperator(ctx, t, node)

	c := agentapi.NewClient(o.SocketPath)
	const n = 250
	ips := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			att := agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: fmt.Sprintf("ctr%03d", i), IfName: "eth0"}}
			for ctx.Err() == nil { // the socket appears once the caches synced
				resp, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: att})
				if err == nil {
					ips[i] = resp.IP
					return
				}
				var apiErr *agentapi.Error
				if errors.As(err, &apiErr) {
					t.Errorf("allocation %d: %v", i, apiErr)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, ip := range ips {
		if ip == "" || seen[ip] {
			t.Fatalf("allocation %d got %q (empty or duplicate)", i, ip)
		}
		seen[ip] = true
	}
	eventually(t, "the CNI plugin is installed", inst.Installed)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	st, err := store.Open(o.StateDir)
	if err != nil || len(st.List()) != n {
		t.Errorf("the state file after shutdown holds %d records (%v), want %d", len(st.List()), err, n)
	}
}

func TestAgentReleasesIPsOfDeletedPods(t *testing.T) {
	const node = "gc-node"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	create(t, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: node}})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "doomed", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	create(t, pod)
	dir, err := os.MkdirTemp("", "npgc")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	o := DefaultOptions()
	o.NodeName, o.SocketPath, o.StateDir = node, filepath.Join(dir, "agent.sock"), filepath.Join(dir, "state")
	o.MetricsAddr, o.HealthAddr, o.GCGrace = "", "", time.Second
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, o, Deps{RestConfig: env.Config, Registry: prometheus.NewRegistry(), Log: testr.New(t)})
	}()
	go playOperator(ctx, t, node)

	c := agentapi.NewClient(o.SocketPath)
	key := agentapi.AttachmentKey{ContainerID: "doomed-ctr", IfName: "eth0"}
	// With the UID, the pod is matched by it: the agent's pod lister must
	// report UIDs or the living pod's IP would be released below.
	att := agentapi.Attachment{AttachmentKey: key, PodNamespace: "default", PodName: "doomed", PodUID: string(pod.UID)}
	eventually(t, "the pod gets an IP", func() bool {
		_, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: att})
		return err == nil
	})
	time.Sleep(3 * time.Second) // several GC passes while the pod exists
	if _, err := c.Check(ctx, agentapi.CheckRequest{AttachmentKey: key}); err != nil {
		t.Fatalf("GC released the IP of a pod that exists: %v", err)
	}
	if err := env.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted pod's IP is released", func() bool {
		_, err := c.Check(ctx, agentapi.CheckRequest{AttachmentKey: key})
		return agentapi.IsNotFound(err)
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, what, cond)
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
