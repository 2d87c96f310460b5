// Package e2e runs nicpool end to end on the simulated Azure VNet: a real
// kube-apiserver, the ARM emulator, the operator and agent binaries, the CNI
// plugin called through libcni, and a fabric of network namespaces that
// delivers traffic as Azure does.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(testbed.RunTests(m, "the e2e VNet testbed", &binDir))
}

func newTestbed(t *testing.T, vms int, agentArgs, operatorArgs []string) *testbed.Testbed {
	t.Helper()
	return newTestbedWith(t, testbed.Config{
		VMs: vms, PutLatency: 100 * time.Millisecond, AgentArgs: agentArgs, OperatorArgs: operatorArgs,
	})
}

// newTestbedWith starts a testbed from cfg with the test's binaries, work
// directory and log, dumps its logs if the test failed and closes it at the
// end, and waits until it is ready.
func newTestbedWith(t *testing.T, cfg testbed.Config) *testbed.Testbed {
	t.Helper()
	ctx := context.Background()
	work := t.TempDir()
	cfg.BinDir, cfg.WorkDir, cfg.Logf = binDir, work, t.Logf
	tb, err := testbed.New(ctx, cfg)
	if err != nil {
		t.Fatalf("start testbed: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, tb, work)
		}
		tb.Close()
	})
	if err := tb.WaitReady(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	return tb
}

func dumpLogs(t *testing.T, tb *testbed.Testbed, work string) {
	logs, _ := filepath.Glob(filepath.Join(work, "*.log"))
	more, _ := filepath.Glob(filepath.Join(work, "*", "*.log"))
	for _, l := range append(logs, more...) {
		data, _ := os.ReadFile(l)
		if keep := os.Getenv("E2E_LOG_KEEP"); keep != "" {
			_ = os.WriteFile(filepath.Join(keep, filepath.Base(filepath.Dir(l))+"-"+filepath.Base(l)), data, 0o600)
		}
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		t.Logf("==== tail of %s\n%s", l, data)
	}
	t.Logf("==== Azure view\n%s", tb.AzureView())
}

func startPods(t *testing.T, tb *testbed.Testbed, vm *testbed.VM, prefix string, n, parallel int) []*testbed.Pod {
	t.Helper()
	pods, err := tb.StartPods(context.Background(), n, parallel, func(i int) (*testbed.VM, string) {
		return vm, fmt.Sprintf("%s-%d", prefix, i)
	})
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// TestConnectivity proves the mission: pods are VNet citizens, reachable
// without SNAT from a peered VNet and on-premises, SNATed to the node's
// primary IP towards the internet, unreachable from the internet.
func TestConnectivity(t *testing.T) {
	tb := newTestbed(t, 2, nil, nil)
	a := startPods(t, tb, tb.VMs[0], "a", 2, 2)
	b := startPods(t, tb, tb.VMs[1], "b", 1, 1)
	if err := tb.StartProbeServers(t.Context(), append(a, b...)...); err != nil {
		t.Fatal(err)
	}
	results := testbed.RunPaths(context.Background(), tb.StandardPaths(a[0], b[0], a[1]), 20*time.Second)
	t.Logf("connectivity:\n%s", testbed.FormatMatrix(results))
	for _, r := range results {
		if !r.OK() {
			t.Errorf("%s from %s to %s (%s): saw %q, err %v", r.Name, r.FromName, r.ToName, r.To, r.Seen, r.Err)
		}
	}
	if err := tb.CheckInvariants(append(a, b...), 250); err != nil {
		t.Error(err)
	}
	if err := tb.StoresMatchPods(context.Background(), append(a, b...)); err != nil {
		t.Error(err)
	}
	if err := tb.FabricError(); err != nil {
		t.Errorf("fabric: %v", err)
	}
}
