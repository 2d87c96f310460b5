package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// referenceConfList is the CNI reference pair the ADD/DEL cost of nicpool is
// compared with: ptp wires a veth with a host route, host-local keeps its
// IPAM store on disk. Both come from Debian's containernetworking-plugins.
const referenceConfList = `{
  "cniVersion": "1.0.0",
  "name": "reference",
  "plugins": [{
    "type": "ptp",
    "ipMasq": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/16"}]], "dataDir": "%s"}
  }]
}`

// burstPods is how many ADDs the burst benchmark starts at once: the most
// pods (and IPs) one VM takes.
const burstPods = 250

// benchNode is one VM of a testbed with nicpool installed, the reference
// configuration beside it, and the libcni a container runtime would use.
type benchNode struct {
	tb        *testbed.Testbed
	vm        *testbed.VM
	cni       *libcni.CNIConfig
	nicpool   *libcni.NetworkConfigList
	reference *libcni.NetworkConfigList
}

// implementations lists nicpool and its reference, in the order they run.
func (n *benchNode) implementations() []struct {
	name string
	list *libcni.NetworkConfigList
} {
	return []struct {
		name string
		list *libcni.NetworkConfigList
	}{{"nicpool", n.nicpool}, {"ptp+host-local", n.reference}}
}

// newBenchNode starts a one-VM testbed whose agent has at least minFree
// free IPs (a warm pool) before it returns.
func newBenchNode(b *testing.B, agentArgs []string, minFree int) *benchNode {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	ctx := context.Background()
	work := b.TempDir()
	tb, err := testbed.New(ctx, testbed.Config{VMs: 1, BinDir: binDir, WorkDir: work, PutLatency: 50 * time.Millisecond, AgentArgs: agentArgs})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tb.Close)
	if err := tb.WaitReady(ctx, 90*time.Second); err != nil {
		b.Fatal(err)
	}
	vm := tb.VMs[0]
	if err := waitFree(ctx, vm.SocketPath, minFree, 3*time.Minute); err != nil {
		b.Fatal(err)
	}
	files, err := libcni.ConfFiles(vm.CNIConfDir, []string{".conflist"})
	if err != nil || len(files) == 0 {
		b.Fatalf("no nicpool conflist: %v", err)
	}
	nicpool, err := libcni.ConfListFromFile(files[0])
	if err != nil {
		b.Fatal(err)
	}
	reference, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(referenceConfList, filepath.Join(work, "host-local"))))
	if err != nil {
		b.Fatal(err)
	}
	cni := testbed.NewCNIConfig([]string{vm.CNIBinDir, "/usr/lib/cni"}, filepath.Join(work, "cache"))
	return &benchNode{tb: tb, vm: vm, cni: cni, nicpool: nicpool, reference: reference}
}

// waitFree waits until the agent on socket has at least n free IPs.
func waitFree(ctx context.Context, socket string, n int, timeout time.Duration) error {
	c := agentapi.NewClient(socket)
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.Status(ctx)
		if err == nil && st.Free >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent never had %d free IPs within %s (last status %+v, %v)", n, timeout, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runtimeConf is a pod's attachment with a fresh container ID.
func runtimeConf(netns, pod string) *libcni.RuntimeConf {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &libcni.RuntimeConf{ContainerID: hex.EncodeToString(id), NetNS: netns, IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", pod}}}
}

// BenchmarkPodNetworkAddDel measures one pod network's ADD followed by its
// DEL, run by libcni from a VM namespace as a container runtime would, for
// nicpool (plugin + agent, with a warm pool) and for ptp + host-local in the
// same run. Each iteration runs one cycle of each, alternating which goes
// first, so a change in the machine's load during the run hits both alike
// (the CI machine is shared). It reports the mean of each (nicpool-ms,
// reference-ms), their ratio, and p50/p99 of each; ns/op is the pair.
func BenchmarkPodNetworkAddDel(b *testing.B) {
	n := newBenchNode(b, []string{"--warm-ip-target=16", "--release-cooldown=10m"}, 16)
	ctx := context.Background()
	podNS, err := n.tb.NewPodNamespace("bench")
	if err != nil {
		b.Fatal(err)
	}
	impls := n.implementations()
	lat := make([][]time.Duration, len(impls))
	adds := make([][]time.Duration, len(impls))
	i := 0
	for b.Loop() {
		for k := range impls {
			idx := (i + k) % len(impls)
			c := impls[idx]
			rt := runtimeConf(podNS.Path(), "bench")
			start := time.Now()
			var added time.Time
			err := n.vm.NS.Do(func(ns.NetNS) error {
				if _, err := n.cni.AddNetworkList(ctx, c.list, rt); err != nil {
					return fmt.Errorf("%s ADD: %w", c.name, err)
				}
				added = time.Now()
				return n.cni.DelNetworkList(ctx, c.list, rt)
			})
			if err != nil {
				b.Fatal(err)
			}
			lat[idx] = append(lat[idx], time.Since(start))
			adds[idx] = append(adds[idx], added.Sub(start))
		}
		i++
	}
	reportMeans(b, lat[0], lat[1])
	reportPercentiles(b, "nicpool", lat[0])
	reportPercentiles(b, "reference", lat[1])
	// Where the cycle's time goes: ADD alone, DEL alone (the cycle less ADD).
	for k, name := range []string{"nicpool", "reference"} {
		var add, cycle time.Duration
		for j := range lat[k] {
			add, cycle = add+adds[k][j], cycle+lat[k][j]
		}
		b.ReportMetric(float64(add)/float64(len(lat[k]))/1e6, name+"-add-ms")
		b.ReportMetric(float64(cycle-add)/float64(len(lat[k]))/1e6, name+"-del-ms")
	}
}

// reportMeans reports nicpool's and the reference's mean in milliseconds
// and the ratio of the means.
func reportMeans(b *testing.B, nicpool, reference []time.Duration) {
	mean := func(d []time.Duration) float64 {
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		return float64(sum) / float64(len(d)) / 1e6
	}
	b.ReportMetric(mean(nicpool), "nicpool-ms")
	b.ReportMetric(mean(reference), "reference-ms")
	b.ReportMetric(mean(nicpool)/mean(reference), "ratio")
}

// reportPercentiles reports the p50 and p99 of d in milliseconds.
func reportPercentiles(b *testing.B, name string, d []time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(p float64) float64 { return float64(s[int(p*float64(len(s)-1))]) / 1e6 }
	b.ReportMetric(pct(0.5), name+"-p50-ms")
	b.ReportMetric(pct(0.99), name+"-p99-ms")
}

// BenchmarkPodNetworkBurst starts burstPods ADDs at once on a warm node (the
// pool already holds an IP for every pod), each into its own pod namespace,
// for nicpool and for ptp + host-local in the same run, alternating which
// goes first. Per implementation it reports the burst's wall time (mean
// over iterations, nicpool-ms and reference-ms, and their ratio) and the
// p50 and p99 of the pods' own ADD latencies over all iterations. It checks
// every pod got its own IP and DELs them all untimed.
func BenchmarkPodNetworkBurst(b *testing.B) {
	n := newBenchNode(b, []string{"--min-ip-target=250", "--warm-ip-target=16", "--max-ips=250", "--release-cooldown=10m"}, burstPods)
	pods := make([]string, burstPods)
	for i := range pods {
		p, err := n.tb.NewPodNamespace(fmt.Sprintf("burst-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		pods[i] = p.Path()
	}
	impls := n.implementations()
	wall := make([][]time.Duration, len(impls))
	perPod := make([][]time.Duration, len(impls))
	i := 0
	for b.Loop() {
		for k := range impls {
			idx := (i + k) % len(impls)
			rts := make([]*libcni.RuntimeConf, len(pods))
			for p, path := range pods {
				rts[p] = runtimeConf(path, fmt.Sprintf("burst-%d", p))
			}
			if impls[idx].list == n.nicpool {
				// A warm node: the pool holds an IP for every pod again
				// before each burst (the last burst's DELs freed them).
				b.StopTimer()
				if err := waitFree(context.Background(), n.vm.SocketPath, burstPods, 2*time.Minute); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			start := time.Now()
			lat, err := n.burst(impls[idx].list, rts)
			wall[idx] = append(wall[idx], time.Since(start))
			perPod[idx] = append(perPod[idx], lat...)
			b.StopTimer()
			if derr := n.delAll(impls[idx].list, rts); err == nil {
				err = derr
			}
			if err != nil {
				b.Fatalf("%s: %v", impls[idx].name, err)
			}
			b.StartTimer()
		}
		i++
	}
	reportMeans(b, wall[0], wall[1])
	reportPercentiles(b, "nicpool-pod", perPod[0])
	reportPercentiles(b, "reference-pod", perPod[1])
	for k, impl := range impls {
		if err := appendSamples(os.Getenv("NICPOOL_BENCH_BURST_SAMPLES"), impl.name, perPod[k]); err != nil {
			b.Fatal(err)
		}
	}
}

// appendSamples appends d in milliseconds to file as one JSON line
// {"series": series, "ms": [...]}: the samples test/bench/report draws
// (make bench sets the file). An empty file name writes nothing.
func appendSamples(file, series string, d []time.Duration) error {
	if file == "" {
		return nil
	}
	ms := make([]float64, len(d))
	for i, x := range d {
		ms[i] = float64(x) / 1e6
	}
	line, err := json.Marshal(struct {
		Series string    `json:"series"`
		MS     []float64 `json:"ms"`
	}{series, ms})
	if err != nil {
		return fmt.Errorf("encode %s samples: %w", series, err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open samples file: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		_ = f.Close()
		return fmt.Errorf("write samples to %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write samples to %s: %w", file, err)
	}
	return nil
}

// burst runs every ADD at once and returns their latencies; it fails when
// an ADD fails or two pods got the same IP.
func (n *benchNode) burst(list *libcni.NetworkConfigList, rts []*libcni.RuntimeConf) ([]time.Duration, error) {
	lat := make([]time.Duration, len(rts))
	ips := make([]string, len(rts))
	errs := make([]error, len(rts))
	var wg sync.WaitGroup
	for i, rt := range rts {
		wg.Go(func() {
			start := time.Now()
			errs[i] = n.vm.NS.Do(func(ns.NetNS) error {
				res, err := n.cni.AddNetworkList(context.Background(), list, rt)
				if err != nil {
					return fmt.Errorf("ADD of pod %d: %w", i, err)
				}
				r, err := current.NewResultFromResult(res)
				if err != nil || len(r.IPs) != 1 {
					return fmt.Errorf("ADD of pod %d: result %v without one IP (%v)", i, res, err)
				}
				ips[i] = r.IPs[0].Address.IP.String()
				return nil
			})
			lat[i] = time.Since(start)
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for i, ip := range ips {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if j, dup := seen[ip]; dup {
			return nil, fmt.Errorf("pods %d and %d both got %s", j, i, ip)
		}
		seen[ip] = i
	}
	return lat, nil
}

// delAll DELs every attachment, at most 32 at a time; every DEL is tried.
func (n *benchNode) delAll(list *libcni.NetworkConfigList, rts []*libcni.RuntimeConf) error {
	errs := make([]error, len(rts))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, rt := range rts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = n.vm.NS.Do(func(ns.NetNS) error { return n.cni.DelNetworkList(context.Background(), list, rt) })
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
