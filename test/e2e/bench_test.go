package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

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

// BenchmarkPodNetworkAddDel measures one pod network's ADD followed by its
// DEL, run by libcni from a VM namespace as a container runtime would, for
// nicpool (plugin + agent, with a warm pool) and for ptp + host-local in the
// same run. Compare the two with benchstat or test/bench/run.sh.
func BenchmarkPodNetworkAddDel(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	ctx := context.Background()
	work := b.TempDir()
	tb, err := testbed.New(ctx, testbed.Config{VMs: 1, BinDir: binDir, WorkDir: work, PutLatency: 50 * time.Millisecond,
		AgentArgs: []string{"--warm-ip-target=16", "--release-cooldown=10m"}})
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	if err := tb.WaitReady(ctx, 90*time.Second); err != nil {
		b.Fatal(err)
	}
	vm := tb.VMs[0]
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
	cni := libcni.NewCNIConfigWithCacheDir([]string{vm.CNIBinDir, "/usr/lib/cni"}, filepath.Join(work, "cache"), nil)
	podNS, err := tb.NewPodNamespace("bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		list *libcni.NetworkConfigList
	}{{"nicpool", nicpool}, {"ptp+host-local", reference}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				id := make([]byte, 16)
				_, _ = rand.Read(id)
				rt := &libcni.RuntimeConf{ContainerID: hex.EncodeToString(id), NetNS: podNS.Path(), IfName: "eth0",
					Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "bench"}}}
				err := vm.NS.Do(func(ns.NetNS) error {
					if _, err := cni.AddNetworkList(ctx, c.list, rt); err != nil {
						return fmt.Errorf("ADD: %w", err)
					}
					return cni.DelNetworkList(ctx, c.list, rt)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
