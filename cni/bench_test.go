package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
)

// concurrentPods is how many ADDs BenchmarkConcurrentAdd starts at once
// (the per-VM pod limit).
const concurrentPods = 250

// benchPool returns n addresses for the fake agent.
func benchPool(n int) []string {
	ips := make([]string, n)
	for i := range ips {
		ips[i] = fmt.Sprintf("10.240.%d.%d", 1+i/250, 1+i%250)
	}
	return ips
}

// benchImpls are nicpool and the reference it must beat: Debian's ptp with
// host-local IPAM, both at CNI 1.0.0 (the newest the reference speaks).
func benchImpls(tb *testbed, dataDir string) map[string]*libcni.NetworkConfigList {
	ptp := []map[string]any{{
		"type": "ptp", "ipMasq": false, "mtu": uplinkMTU,
		"ipam": map[string]any{"type": "host-local", "dataDir": dataDir, "ranges": [][]map[string]string{{{"subnet": "10.241.0.0/16"}}}},
	}}
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "ptp-bench", "plugins": ptp})
	ref, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		tb.t.Fatal(err)
	}
	return map[string]*libcni.NetworkConfigList{"nicpool": tb.confList("1.0.0"), "ptp-host-local": ref}
}

// BenchmarkAddDel measures one ADD followed by one DEL through libcni and
// reports p50 and p99 per implementation; compare the two sub-benchmarks'
// p50-ns and p99-ns for the ratio.
func BenchmarkAddDel(b *testing.B) {
	for _, name := range []string{"nicpool", "ptp-host-local"} {
		b.Run(name, func(b *testing.B) {
			tb := newTestbed(b, benchPool(1)...)
			list := benchImpls(tb, filepath.Join(b.TempDir(), "ipam"))[name]
			skipWithoutPlugin(b, tb, list)
			pod := newNS(b)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rt := runtimeConf(fmt.Sprintf("bench-%d", i), pod)
				start := time.Now()
				if _, err := tb.add(list, rt); err != nil {
					b.Fatalf("ADD: %v", err)
				}
				if err := tb.del(list, rt); err != nil {
					b.Fatalf("DEL: %v", err)
				}
				lat = append(lat, time.Since(start))
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkConcurrentAdd starts concurrentPods ADDs at once and reports the
// time until all succeeded; the DELs afterwards are not timed.
func BenchmarkConcurrentAdd(b *testing.B) {
	for _, name := range []string{"nicpool", "ptp-host-local"} {
		b.Run(name, func(b *testing.B) {
			tb := newTestbed(b, benchPool(concurrentPods)...)
			list := benchImpls(tb, filepath.Join(b.TempDir(), "ipam"))[name]
			skipWithoutPlugin(b, tb, list)
			pods := make([]ns.NetNS, concurrentPods)
			for i := range pods {
				pods[i] = newNS(b)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rts := make([]*libcni.RuntimeConf, len(pods))
				for p := range pods {
					rts[p] = runtimeConf(fmt.Sprintf("c%d-%d", i, p), pods[p])
				}
				if err := forAll(rts, func(rt *libcni.RuntimeConf) error { _, err := tb.add(list, rt); return err }); err != nil {
					b.Fatalf("concurrent ADD: %v", err)
				}
				b.StopTimer()
				if err := forAll(rts, func(rt *libcni.RuntimeConf) error { return tb.del(list, rt) }); err != nil {
					b.Fatalf("DEL: %v", err)
				}
				b.StartTimer()
			}
		})
	}
}

func forAll(rts []*libcni.RuntimeConf, fn func(*libcni.RuntimeConf) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(rts))
	for i, rt := range rts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(rt)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func skipWithoutPlugin(b *testing.B, tb *testbed, list *libcni.NetworkConfigList) {
	for _, p := range list.Plugins {
		if _, err := tb.cni.GetVersionInfo(context.Background(), p.Network.Type); err != nil {
			b.Skipf("plugin %s unavailable: %v", p.Network.Type, err)
		}
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
}
