package operator

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/testenv"
)

// operatorProcess is nicpool-operator running as its own process against
// envtest's API server and armsim, so its memory is its own.
type operatorProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// buildOperator builds cmd/nicpool-operator into dir.
func buildOperator(b *testing.B, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "nicpool-operator")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/nicpool-operator")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build nicpool-operator: %v\n%s", err, out)
	}
	return bin
}

// startOperatorProcess runs the operator with its default flags, pointed at
// armsim and envtest; its log goes to logPath.
func startOperatorProcess(b *testing.B, bin string, srv *armsim.Server, dir, logPath string) *operatorProcess {
	b.Helper()
	ca := filepath.Join(dir, "armsim-ca.pem")
	if err := os.WriteFile(ca, srv.CACertPEM(), 0o600); err != nil {
		b.Fatalf("write armsim ca: %v", err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeKubeconfig(b, kubeconfig)
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatalf("create operator log: %v", err)
	}
	args := []string{"--kubeconfig", kubeconfig, "--arm-endpoint", srv.URL(), "--arm-ca-file", ca,
		"--auth-mode", "none", "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}
	// BENCH_OPERATOR_ARGS adds flags, e.g. --zap-log-level=debug to see each pass.
	args = append(args, strings.Fields(os.Getenv("BENCH_OPERATOR_ARGS"))...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatalf("start nicpool-operator: %v", err)
	}
	p := &operatorProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); _ = logf.Close() }()
	return p
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func (p *operatorProcess) peakRSS() (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read operator status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
}

// cpuTime returns the CPU time (user + system) the process has used: on a
// loaded machine, what the operator itself costs, whatever the wait for a core.
func (p *operatorProcess) cpuTime() (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read operator stat: %w", err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %q", p.cmd.Process.Pid, raw)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse cpu times in /proc/%d/stat: %q", p.cmd.Process.Pid, raw)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// stop ends the operator (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (p *operatorProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// writeKubeconfig writes envtest's admin credentials as a kubeconfig.
func writeKubeconfig(b *testing.B, path string) {
	b.Helper()
	c := env.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		b.Fatalf("write kubeconfig: %v", err)
	}
}

// timeline records, from a watch, each pool's allocatedIPCount over time.
type timeline struct {
	mu     sync.Mutex
	start  time.Time
	counts map[string]int
	vnet   map[string]bool
	points map[string][][2]float64 // pool -> (seconds since start, count)
	cancel context.CancelFunc
}

// watchPools starts an informer on NodeIPPools feeding a timeline.
func watchPools(b *testing.B) *timeline {
	b.Helper()
	c, err := cache.New(env.Config, cache.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatalf("create cache: %v", err)
	}
	inf, err := c.GetInformer(context.Background(), &nicpoolv1.NodeIPPool{})
	if err != nil {
		b.Fatalf("get pool informer: %v", err)
	}
	tl := &timeline{counts: map[string]int{}, vnet: map[string]bool{}, points: map[string][][2]float64{}}
	record := func(obj any) {
		p, ok := obj.(*nicpoolv1.NodeIPPool)
		if !ok {
			return
		}
		tl.mu.Lock()
		defer tl.mu.Unlock()
		n := int(p.Status.AllocatedIPCount)
		tl.vnet[p.Name] = p.Status.VNetID != ""
		if old, seen := tl.counts[p.Name]; seen && old == n {
			return
		}
		tl.counts[p.Name] = n
		if !tl.start.IsZero() {
			tl.points[p.Name] = append(tl.points[p.Name], [2]float64{time.Since(tl.start).Seconds(), float64(n)})
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, obj any) { record(obj) },
	}); err != nil {
		b.Fatalf("watch pools: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tl.cancel = cancel
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("pool informer did not sync")
	}
	return tl
}

// begin starts the clock: every pool's count now is its first point.
func (tl *timeline) begin() {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.start = time.Now()
	for name, n := range tl.counts {
		tl.points[name] = [][2]float64{{0, float64(n)}}
	}
}

// count reports how many of names satisfy ok.
func (tl *timeline) count(names []string, ok func(count int, identified bool) bool) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, name := range names {
		if ok(tl.counts[name], tl.vnet[name]) {
			n++
		}
	}
	return n
}

// reached returns when each pool first reached want (seconds since begin).
func (tl *timeline) reached(want int) map[string]float64 {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := map[string]float64{}
	for name, pts := range tl.points {
		for _, p := range pts {
			if int(p[1]) >= want {
				out[name] = p[0]
				break
			}
		}
	}
	return out
}

// createNodes creates n Nodes whose providerIDs name armsim's generated VMs.
func createNodes(b *testing.B, prefix string, n int) []string {
	b.Helper()
	names := make([]string, n)
	err := parallel(n, func(i int) error {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: names[i]}, Spec: corev1.NodeSpec{
			ProviderID: fmt.Sprintf("azure:///subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/vm-%d", sub, rg, i),
		}}
		return env.Client.Create(context.Background(), node)
	})
	if err != nil {
		b.Fatalf("create nodes: %v", err)
	}
	return names
}

// deleteNodes removes the nodes and their pools (no finalizer is left for a
// stopped operator to honour).
func deleteNodes(names []string) {
	_ = parallel(len(names), func(i int) error {
		ctx := context.Background()
		_ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: names[i]}})
		_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p := &nicpoolv1.NodeIPPool{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: names[i]}, p); err != nil {
				return client.IgnoreNotFound(err)
			}
			p.Finalizers = nil
			return env.Client.Update(ctx, p)
		})
		return env.Client.Delete(ctx, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: names[i]}})
	})
}

// setRequests sets every pool's spec.requestedIPCount, as the agents would
// all at once.
func setRequests(b *testing.B, names []string, n int32) {
	b.Helper()
	err := parallel(len(names), func(i int) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p := &nicpoolv1.NodeIPPool{}
			if err := env.Client.Get(context.Background(), client.ObjectKey{Name: names[i]}, p); err != nil {
				return err
			}
			p.Spec.RequestedIPCount = n
			return env.Client.Update(context.Background(), p)
		})
	})
	if err != nil {
		b.Fatalf("set requests: %v", err)
	}
}

// parallel runs f(0..n-1) on 16 goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// waitUntil polls cond every 50 ms (it reads the watch's memory, no API call).
func waitUntil(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
