package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// coldPutLatency is armsim's NIC PUT latency in the cold-burst runs: about
// what a NIC PUT takes in Azure (seconds), so the burst's wall time is
// reported as a multiple of it.
const coldPutLatency = time.Second

// coldBurstAgentArgs are the agent's default pool knobs, with a short
// release cooldown so that the benchmark's node shrinks back to its idle
// pool between iterations.
var coldBurstAgentArgs = []string{"--release-cooldown=2s"}

// coldNode is a one-VM testbed for cold bursts: the agent keeps its default
// policy (an idle node holds min-ip-target IPs).
type coldNode struct {
	tb   *testbed.Testbed
	vm   *testbed.VM
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	pods []string // pod network namespace paths
	idle int      // IPs on the idle node's NIC
}

func newColdNode(tb testing.TB) *coldNode {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for network namespaces")
	}
	ctx := context.Background()
	work := tb.TempDir()
	bed, err := testbed.New(ctx, testbed.Config{VMs: 1, BinDir: binDir, WorkDir: work, PutLatency: coldPutLatency, AgentArgs: coldBurstAgentArgs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if t, ok := tb.(*testing.T); ok && t.Failed() {
			dumpLogs(t, bed, work)
		}
		bed.Close()
	})
	if err := bed.WaitReady(ctx, 90*time.Second); err != nil {
		tb.Fatal(err)
	}
	n := &coldNode{tb: bed, vm: bed.VMs[0]}
	files, err := libcni.ConfFiles(n.vm.CNIConfDir, []string{".conflist"})
	if err != nil || len(files) == 0 {
		tb.Fatalf("no nicpool conflist: %v", err)
	}
	if n.list, err = libcni.ConfListFromFile(files[0]); err != nil {
		tb.Fatal(err)
	}
	n.cni = testbed.NewCNIConfig([]string{n.vm.CNIBinDir}, filepath.Join(work, "cache"))
	for i := range burstPods {
		p, err := bed.NewPodNamespace(fmt.Sprintf("cold-%d", i))
		if err != nil {
			tb.Fatal(err)
		}
		n.pods = append(n.pods, p.Path())
	}
	if n.idle, err = n.waitIdle(ctx); err != nil {
		tb.Fatal(err)
	}
	return n
}

// waitIdle waits until the node is cold again: no allocation, and the NIC
// and the agent's usable IPs shrunk to the policy's idle pool (the NIC count
// stable for two seconds, longer than the release cooldown's effect takes
// to show). It returns the NIC's IP count.
func (n *coldNode) waitIdle(ctx context.Context) (int, error) {
	deadline := time.Now().Add(3 * time.Minute) // release cooldown plus one PUT, with a large margin for a loaded machine
	last, since := -1, time.Now()
	for {
		count := n.tb.NICIPCount(n.vm)
		st, err := agentapi.NewClient(n.vm.SocketPath).Status(ctx)
		if count != last {
			last, since = count, time.Now()
		}
		if err == nil && st.Allocated == 0 && st.Capacity == count && count <= 20 && time.Since(since) > 2*time.Second {
			return count, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("node never went back to an idle pool (NIC %d IPs, agent %+v, %v)", count, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// coldBurstResult is one cold burst's outcome.
type coldBurstResult struct {
	wall    time.Duration // first Pod object created to last pod wired
	bound   time.Duration // until every Pod object was created (bound)
	nicFull time.Duration // until the NIC held an IP for every pod
	writes  int           // NIC PUTs armsim accepted during the burst
	perPod  []time.Duration
}

// coldBurst binds burstPods Pod objects to the node (as the scheduler does
// before the kubelet calls CNI) and runs their ADDs at once, on a cold node.
// It counts the NIC writes from armsim's log of accepted PUTs, checks every
// pod got its own IP, then DELs them all and deletes the Pod objects.
func (n *coldNode) coldBurst(ctx context.Context, round int) (coldBurstResult, error) {
	before := n.puts()
	start := time.Now()
	rts, err := n.bind(ctx, fmt.Sprintf("cold-%d", round))
	if err != nil {
		return coldBurstResult{}, err
	}
	created := time.Since(start)
	// The NIC's IP count, sampled every 20 ms: when it first holds an IP
	// for every pod.
	stop, nicFull := make(chan struct{}), make(chan time.Duration, 1)
	go func() {
		for {
			if n.tb.NICIPCount(n.vm) >= len(n.pods) {
				nicFull <- time.Since(start)
				return
			}
			select {
			case <-stop:
				nicFull <- 0
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	b := &benchNode{tb: n.tb, vm: n.vm, cni: n.cni}
	lat, err := b.burst(n.list, rts)
	wall := time.Since(start)
	close(stop)
	res := coldBurstResult{wall: wall, bound: created, nicFull: <-nicFull, writes: n.puts() - before, perPod: lat}
	if derr := b.delAll(n.list, rts); err == nil {
		err = derr
	}
	for i := range n.pods {
		obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cold-%d-%d", round, i), Namespace: testbed.PodNamespace}}
		if derr := n.tb.Env.Client.Delete(ctx, obj); derr != nil && !apierrors.IsNotFound(derr) && err == nil {
			err = derr
		}
	}
	return res, err
}

// bind creates a Pod object bound to the node for each pod namespace, at
// once (named prefix-<i>), as the scheduler binds a burst, and returns their
// runtime configurations in namespace order.
func (n *coldNode) bind(ctx context.Context, prefix string) ([]*libcni.RuntimeConf, error) {
	rts := make([]*libcni.RuntimeConf, len(n.pods))
	errs := make([]error, len(n.pods))
	var wg sync.WaitGroup
	for i, path := range n.pods {
		name := fmt.Sprintf("%s-%d", prefix, i)
		rts[i] = runtimeConf(path, name)
		wg.Go(func() { errs[i] = n.createPod(ctx, name) })
	}
	wg.Wait()
	return rts, errors.Join(errs...)
}

func (n *coldNode) createPod(ctx context.Context, name string) error {
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testbed.PodNamespace},
		Spec:       corev1.PodSpec{NodeName: n.vm.Name, Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
	}
	if err := n.tb.Env.Client.Create(ctx, obj); err != nil {
		return fmt.Errorf("create pod %s: %w", name, err)
	}
	return nil
}

// puts is how many NIC PUTs armsim accepted so far.
func (n *coldNode) puts() int {
	total := 0
	for _, c := range n.tb.Sim.Stats().PutsByNIC {
		total += c
	}
	return total
}

// TestColdBurstNICWrites binds burstPods pods to a node whose pool holds
// only its idle minimum, as the scheduler does before the kubelet calls CNI,
// and checks that the agent asks for them as a whole, not batch by batch as
// their ADDs arrive: the NIC holds an IP for every bound pod before any ADD,
// and the burst of ADDs that follows costs no NIC write and gives every pod
// its own IP. Without bound pods counted as demand the NIC stays at the idle
// pool until the ADDs come.
//
// How many NIC writes the binding itself takes depends on how fast the API
// server binds the burst: 1 on a quiet machine, 2 when binding took longer
// than the agent's settle window (4.3 s under CPU load), 3 once in a
// fresh-clone make test at load average ~70. It is therefore a figure of
// BenchmarkPodNetworkColdBurst (make bench, target <= 2), logged here but not
// asserted.
func TestColdBurstNICWrites(t *testing.T) {
	n := newColdNode(t)
	ctx := context.Background()
	start, before := time.Now(), n.puts()
	rts, err := n.bind(ctx, "cold")
	if err != nil {
		t.Fatal(err)
	}
	bound := time.Since(start)
	// A bounded wait: the agent's settle window plus a few NIC PUTs take
	// seconds; a loaded CI machine may stretch both many times.
	deadline := time.Now().Add(3 * time.Minute)
	for n.tb.NICIPCount(n.vm) < len(n.pods) {
		if time.Now().After(deadline) {
			t.Fatalf("%d pods bound to %s, no ADD yet: the NIC still holds %d IPs after 3 minutes, want one per bound pod",
				len(n.pods), n.vm.Name, n.tb.NICIPCount(n.vm))
		}
		time.Sleep(100 * time.Millisecond)
	}
	nicFull, bindWrites := time.Since(start), n.puts()-before
	b := &benchNode{tb: n.tb, vm: n.vm, cni: n.cni}
	if _, err := b.burst(n.list, rts); err != nil {
		t.Fatal(err)
	}
	wall, addWrites := time.Since(start), n.puts()-before-bindWrites
	t.Logf("Cold burst of %d pods from an idle pool of %d IPs: pods bound after %s, NIC held an IP for each after %s and %d NIC writes, all wired after %s with %d more",
		burstPods, n.idle, bound.Round(time.Millisecond), nicFull.Round(time.Millisecond), bindWrites, wall.Round(time.Millisecond), addWrites)
	if addWrites != 0 {
		t.Errorf("the ADDs of %d pods whose IPs were already on the NIC took %d NIC writes, want none", burstPods, addWrites)
	}
	if err := b.delAll(n.list, rts); err != nil {
		t.Error(err)
	}
}

// BenchmarkPodNetworkColdBurst binds burstPods pods to a cold node (its pool
// at the policy's idle minimum) and then runs their ADDs at once. It reports
// the wall time from the first Pod object to the last pod wired, also as a
// multiple of armsim's PUT latency in the same run (put-latency-x), the time
// until the pods were bound and until the NIC held an IP for each, the most
// NIC writes any burst took, and p50/p99 per pod. Between iterations, untimed, the node
// shrinks back to its idle pool.
func BenchmarkPodNetworkColdBurst(b *testing.B) {
	n := newColdNode(b)
	ctx := context.Background()
	var walls, nicFull, bound, perPod []time.Duration
	writes, round := 0, 0
	for b.Loop() {
		b.StopTimer()
		if _, err := n.waitIdle(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := n.coldBurst(ctx, round)
		if err != nil {
			b.Fatal(err)
		}
		round++
		walls, nicFull, bound = append(walls, res.wall), append(nicFull, res.nicFull), append(bound, res.bound)
		perPod = append(perPod, res.perPod...)
		writes = max(writes, res.writes)
	}
	mean := func(d []time.Duration) float64 {
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		return float64(sum) / float64(len(d))
	}
	b.ReportMetric(mean(walls)/1e6, "wall-ms")
	b.ReportMetric(mean(nicFull)/1e6, "nic-full-ms")
	b.ReportMetric(mean(bound)/1e6, "bound-ms")
	b.ReportMetric(float64(coldPutLatency)/1e6, "put-latency-ms")
	b.ReportMetric(mean(walls)/float64(coldPutLatency), "put-latency-x")
	b.ReportMetric(float64(writes), "max-nic-writes")
	b.ReportMetric(float64(n.idle), "idle-pool-ips")
	reportPercentiles(b, "pod", perPod)
}
