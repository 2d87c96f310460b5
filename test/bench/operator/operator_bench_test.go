// Package operator benchmarks the nicpool operator against the simulated
// Azure VNet: 64 nodes scaled from 0 to 250 IPs each, with a realistic NIC
// write latency and ARM's per-subscription write bucket.
//
// Run it with test/bench/operator/run.sh (or
// go test ./test/bench/operator -run '^$' -bench . -benchtime 1x).
package operator

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/controllers"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if path := os.Getenv("BENCH_LOG"); path != "" {
		if f, err := os.Create(path); err == nil {
			ctrl.SetLogger(zap.New(zap.WriteTo(f), zap.Level(zapcore.DebugLevel)))
		}
	}
	testenv.Main(m, &env)
}

const (
	sub        = "00000000-0000-0000-0000-0000000be7c4"
	rg         = "rg-bench"
	nodes      = 64
	perNode    = 250
	putLatency = 2 * time.Second
)

// BenchmarkScale64Nodes0To250 scales 64 nodes from 0 to 250 IPs each and
// reports ARM writes per node, the time to converge and the peak heap.
func BenchmarkScale64Nodes0To250(b *testing.B) {
	for range b.N {
		r := runScale(b)
		b.ReportMetric(r.writesPerNode, "writes/node")
		b.ReportMetric(float64(r.reads)/nodes, "reads/node")
		b.ReportMetric(r.converge.Seconds(), "s-to-converge")
		b.ReportMetric(float64(r.peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(r.converge.Seconds()/putLatency.Seconds(), "converge/put-latency")
		b.Logf("64 nodes 0 -> 250: %d NIC writes (%.2f per node, max %d), %d ARM reads (client-side read budget %v/s), %d throttled ARM calls, converged in %s (%.1fx the %s PUT latency), peak heap %.1f MiB (operator, API client caches and armsim share the process)",
			r.writes, r.writesPerNode, r.maxWrites, r.reads, azure.DefaultReadQPS, r.throttled, r.converge.Round(time.Millisecond), r.converge.Seconds()/putLatency.Seconds(), putLatency, float64(r.peakHeap)/(1<<20))
	}
}

type result struct {
	writes, maxWrites, throttled, reads int
	writesPerNode                       float64
	converge                            time.Duration
	peakHeap                            uint64
}

func runScale(b *testing.B) result {
	b.Helper()
	topo := armsim.GenerateTopology(sub, rg, "10.64.0.0/16", "10.64.0.0/16", nodes)
	srv, co, cred := armsimtest.Start(b, armsim.Options{Topology: topo, PutLatency: putLatency, Logf: func(string, ...any) {}})
	opts := controllers.DefaultOptions()
	if w := os.Getenv("BENCH_WORKERS"); w != "" {
		opts.Workers, _ = strconv.Atoi(w)
	}
	cfg := opts.Azure
	cfg.ClientOptions, cfg.Credential, cfg.Observer = co, cred, controllers.ObserveARMCall
	nics, err := azure.NewNICClient(cfg)
	if err != nil {
		b.Fatalf("create nic client: %v", err)
	}
	stop := startOperator(b, nics, opts)
	defer stop()
	names := createNodes(b)
	defer deleteNodes(names)
	waitFor(b, 2*time.Minute, func() bool {
		for _, n := range names {
			if pool(n).Status.VNetID == "" {
				return false
			}
		}
		return true
	})
	before := srv.Stats()
	peak, stopSampling := sampleHeap()
	start := time.Now()
	for _, n := range names {
		setRequest(b, n, perNode)
	}
	b.Logf("requests set in %s", time.Since(start).Round(time.Millisecond))
	doneAt := map[string]time.Duration{}
	waitFor(b, 10*time.Minute, func() bool {
		for _, n := range names {
			if _, ok := doneAt[n]; !ok && pool(n).Status.AllocatedIPCount == perNode {
				doneAt[n] = time.Since(start)
			}
		}
		return len(doneAt) == len(names)
	})
	r := result{converge: time.Since(start)}
	firsts := make([]time.Duration, 0, len(doneAt))
	for _, d := range doneAt {
		firsts = append(firsts, d)
	}
	slices.Sort(firsts)
	b.Logf("pools converged at: first %s, 25%% %s, median %s, 75%% %s, last %s", firsts[0], firsts[len(firsts)/4], firsts[len(firsts)/2], firsts[3*len(firsts)/4], firsts[len(firsts)-1])
	stopSampling()
	r.peakHeap = *peak
	after := srv.Stats()
	for id, n := range after.PutsByNIC {
		w := n - before.PutsByNIC[id]
		r.writes += w
		r.maxWrites = max(r.maxWrites, w)
	}
	perOp := map[armsim.Op]int{}
	for op, codes := range after.Calls {
		r.throttled += codes[429]
		total := 0
		for code, n := range codes {
			total += n - before.Calls[op][code]
		}
		if op != armsim.OpPutNIC {
			r.reads += total
		}
		perOp[op] = total
	}
	b.Logf("ARM calls during the scale step: %v", perOp)
	r.writesPerNode = float64(r.writes) / nodes
	logLatencies(b)
	return r
}

func startOperator(b *testing.B, nics *azure.NICClient, opts controllers.Options) func() {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		b.Fatalf("create manager: %v", err)
	}
	if _, err := controllers.Setup(mgr, opts, nics); err != nil {
		b.Fatalf("set up operator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			b.Errorf("manager: %v", err)
		}
	}()
	return func() { cancel(); <-done }
}

func createNodes(b *testing.B) []string {
	names := make([]string, nodes)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: names[i]}, Spec: corev1.NodeSpec{
			ProviderID: fmt.Sprintf("azure:///subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/vm-%d", sub, rg, i),
		}}
		if err := env.Client.Create(context.Background(), node); err != nil {
			b.Fatalf("create node: %v", err)
		}
	}
	return names
}

// deleteNodes removes the nodes and their pools (no finalizer is left for a
// stopped operator to honour).
func deleteNodes(names []string) {
	ctx := context.Background()
	for _, n := range names {
		_ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		p := pool(n)
		if p.ResourceVersion == "" {
			continue
		}
		p.Finalizers = nil
		_ = env.Client.Update(ctx, p)
		_ = env.Client.Delete(ctx, p)
	}
}

func pool(name string) *nicpoolv1.NodeIPPool {
	p := &nicpoolv1.NodeIPPool{}
	_ = env.Client.Get(context.Background(), client.ObjectKey{Name: name}, p)
	return p
}

func setRequest(b *testing.B, name string, n int32) {
	for range 20 {
		p := pool(name)
		p.Spec.RequestedIPCount = n
		if err := env.Client.Update(context.Background(), p); err == nil {
			return
		}
	}
	b.Fatalf("could not set the request of pool %s", name)
}

func waitFor(b *testing.B, timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sampleHeap records the peak in-use heap every 20ms until stopped.
func sampleHeap() (*uint64, func()) {
	var peak uint64
	var mu sync.Mutex
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			mu.Lock()
			peak = max(peak, ms.HeapInuse)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return &peak, func() { close(done); <-stopped }
}

// logLatencies prints the mean ARM and reconcile latencies the operator's
// metrics recorded.
func logLatencies(b *testing.B) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Logf("gather metrics: %v", err)
		return
	}
	var lines []string
	defer func() { b.Logf("operator latencies: %s", strings.Join(lines, "; ")) }()
	for _, f := range families {
		if f.GetName() != "nicpool_arm_request_duration_seconds" && f.GetName() != "nicpool_reconcile_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h.GetSampleCount() == 0 {
				continue
			}
			label := ""
			for _, l := range m.GetLabel() {
				label += l.GetValue()
			}
			lines = append(lines, fmt.Sprintf("%s{%s}: %d, mean %s", strings.TrimPrefix(f.GetName(), "nicpool_"), label, h.GetSampleCount(),
				time.Duration(h.GetSampleSum()/float64(h.GetSampleCount())*float64(time.Second)).Round(time.Millisecond)))
		}
	}
}
