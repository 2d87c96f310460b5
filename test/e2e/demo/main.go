// Command demo is `make demo`: it starts the simulated Azure VNet with a
// real API server, the operator and one agent per VM, starts pods through the
// nicpool CNI plugin, and prints the pools, the connectivity matrix and
// Azure's view. Everything is torn down on exit or Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	vms := flag.Int("vms", 3, "number of simulated VMs (nodes)")
	pods := flag.Int("pods", 30, "number of pods, spread over the VMs")
	keep := flag.Bool("keep", false, "keep the testbed running until Ctrl-C and print commands to explore it")
	binDir := flag.String("bin-dir", filepath.Join(testenv.RepoRoot(), "bin"), "directory with nicpool-operator, nicpool-agent and nicpool")
	flag.Parse()
	if *vms < 2 || *pods < *vms {
		return errors.New("--vms must be at least 2 and --pods at least --vms")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	work, err := os.MkdirTemp("", "nicpool-demo-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	logf := func(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) }
	fmt.Printf("Starting the simulated VNet with %d VMs (work dir %s).\n", *vms, work)
	tb, err := testbed.New(ctx, testbed.Config{VMs: *vms, BinDir: *binDir, WorkDir: work, PutLatency: 200 * time.Millisecond, Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("Tearing down: processes stopped, namespaces deleted.")
		tb.Close()
	}()
	if err := tb.WaitReady(ctx, 90*time.Second); err != nil {
		return err
	}
	started, err := startPods(ctx, tb, *pods)
	if err != nil {
		return err
	}
	return report(ctx, tb, started, *keep, work)
}

func startPods(ctx context.Context, tb *testbed.Testbed, n int) ([]*testbed.Pod, error) {
	fmt.Printf("Starting %d pods through the nicpool CNI plugin.\n", n)
	t0 := time.Now()
	pods, err := tb.StartPods(ctx, n, 8, func(i int) (*testbed.VM, string) {
		vm := tb.VMs[i%len(tb.VMs)]
		return vm, fmt.Sprintf("demo-%s-%d", vm.Name, i)
	})
	if err != nil {
		return nil, err
	}
	fmt.Printf("  %d pods running after %s.\n", n, time.Since(t0).Round(time.Millisecond))
	return pods, nil
}

func report(ctx context.Context, tb *testbed.Testbed, pods []*testbed.Pod, keep bool, work string) error {
	a, b, c := pods[0], pods[1], pods[len(tb.VMs)] // a and c share a VM, b is on another
	if err := tb.StartProbeServers(ctx, a, b, c); err != nil {
		return err
	}
	results := testbed.RunPaths(ctx, tb.StandardPaths(a, b, c), 20*time.Second)

	table, err := tb.NodeIPPoolTable(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("\n$ kubectl get nodeippools -o wide\n%s", table)
	fmt.Printf("\nConnectivity (each destination reports the source address it saw):\n%s", testbed.FormatMatrix(results))
	fmt.Printf("\nAzure's view (simulated ARM):\n%s", tb.AzureView())
	failed := 0
	for _, r := range results {
		if !r.OK() {
			failed++
		}
	}
	if err := tb.CheckInvariants(pods, 250); err != nil {
		return err
	}
	fmt.Printf("\nInvariants hold for %d pods: unique IPs, each on its own VM's NIC.\n", len(pods))
	if keep {
		fmt.Printf("\nThe testbed keeps running. Explore it, then press Ctrl-C:\n")
		fmt.Printf("  kubectl --kubeconfig %s get nip -o wide\n", tb.Kubeconfig())
		fmt.Printf("  ip netns exec %s ip route      # routes of VM %s\n", tb.VMs[0].NS.Name, tb.VMs[0].Name)
		fmt.Printf("  ip netns exec %s ip addr       # pod %s (%s)\n", a.NS.Name, a.Name, a.IP)
		fmt.Printf("  ip netns exec %s iptables -t nat -S NICPOOL-SNAT\n", tb.VMs[0].NS.Name)
		fmt.Printf("  logs: %s\n", work)
		<-ctx.Done()
	}
	if failed > 0 {
		return fmt.Errorf("%d connectivity checks failed", failed)
	}
	return nil
}
