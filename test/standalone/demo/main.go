// Command demo is `make demo-standalone`: containers on Azure VMs without
// Kubernetes, on the simulated VNet. Two VMs run the nicpool agent as its
// own process (as the systemd unit does), Debian's containerd and nerdctl:
//   - vm-0 is a Docker-style host whose administrator provisioned three
//     secondary IPs on its NIC; its agent reads them from instance metadata
//     (--pool-source=imds). It runs a nerdctl container and a network
//     namespace attached with `nicpoolctl attach`, as a Docker container
//     started with --network none would be.
//   - vm-1's agent keeps its own NIC through ARM with the VM's managed
//     identity (--pool-source=arm), and runs a nerdctl container.
//
// It prints the connectivity table (peered VNet, on-premises, internet
// through SNAT, container to container), shows `nerdctl rm` giving the IP
// back, and exits nonzero if any row failed. Everything is torn down on
// exit or Ctrl-C.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
	"github.com/nicpool/nicpool/test/standalone/vmhost"
)

// Bounds of the waits: generous for a loaded 2-core machine.
const (
	readyWait  = 2 * time.Minute
	settleWait = 30 * time.Second
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo-standalone:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

func run() error {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root: it creates network namespaces, mounts and cgroups (run `sudo make demo-standalone`)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "nicpool-demo-standalone-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	start := time.Now()

	step("Building the agent, the CNI plugin and nicpoolctl.")
	bin := filepath.Join(work, "bin")
	if err := testbed.BuildBinaries(bin); err != nil {
		return err
	}
	step("Starting the simulated VNet: two VMs without Kubernetes, a peered VNet, on-premises, the internet.")
	tb, err := testbed.New(ctx, testbed.Config{VMs: 2, NoKubernetes: true, BinDir: bin, WorkDir: filepath.Join(work, "vnet"),
		Logf: func(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) }})
	if tb != nil {
		defer func() {
			fmt.Println("\nTearing down: containers, containerd, agents and namespaces removed.")
			tb.Close()
		}()
	}
	if err != nil {
		return err
	}
	d := &demo{tb: tb, work: work}
	defer d.close()
	if err := d.run(ctx); err != nil {
		return err
	}
	fmt.Printf("\nDemo finished in %s.\n", time.Since(start).Round(time.Second))
	if d.failed > 0 {
		return fmt.Errorf("%d row(s) failed", d.failed)
	}
	return nil
}

type demo struct {
	tb      *testbed.Testbed
	work    string
	hosts   []*vmhost.Nerdctl
	closers []func()
	failed  int
}

func (d *demo) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	for _, h := range d.hosts {
		if err := h.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "demo-standalone: stop containerd:", err)
		}
	}
}

func (d *demo) nerdctlHost(ctx context.Context, vm *testbed.VM) (*vmhost.Nerdctl, error) {
	h, err := vmhost.StartNerdctl(ctx, d.tb, vm, filepath.Join(d.work, vm.Name+"-nerdctl"))
	d.hosts = append(d.hosts, h)
	return h, err
}

// row is one line of the table that is not a probe path (the container's
// own echo server, nerdctl rm).
func row(name, from, to, ip, want, seen string, err error) testbed.PathResult {
	return testbed.PathResult{Path: testbed.Path{Name: name, FromName: from, ToName: to, To: ip, WantSeen: want}, Seen: seen, Err: err}
}

func (d *demo) run(ctx context.Context) error {
	tb := d.tb
	vm0, vm1 := tb.VMs[0], tb.VMs[1]
	peer, onprem := tb.Sites["peer"], tb.Sites["onprem"]

	step("vm-0: the administrator adds three secondary IP configurations to the NIC (as Azure documents for Docker hosts).")
	provisioned, err := vmhost.Provision(ctx, tb, vm0, 3)
	if err != nil {
		return err
	}
	fmt.Printf("  provisioned %s\n", strings.Join(provisioned, ", "))
	step("vm-0: nicpool-agent --pool-source=imds (instance metadata, 169.254.169.254); vm-1: nicpool-agent --pool-source=arm (managed identity).")
	if err := tb.StartStandaloneAgent(ctx, vm0, "imds"); err != nil {
		return err
	}
	if err := tb.StartStandaloneAgent(ctx, vm1, "arm", "--warm-ip-target=2"); err != nil {
		return err
	}
	for _, vm := range []*testbed.VM{vm0, vm1} {
		if err := vmhost.WaitInstalled(ctx, vm, readyWait); err != nil {
			return err
		}
		fmt.Printf("  %s: the agent installed the nicpool conflist into %s\n", vm.Name, vm.CNIConfDir)
	}

	step("Starting Debian's containerd on both VMs; nerdctl run -d --net nicpool nicpool.test/echo:v1.")
	h0, err := d.nerdctlHost(ctx, vm0)
	if err != nil {
		return err
	}
	h1, err := d.nerdctlHost(ctx, vm1)
	if err != nil {
		return err
	}
	web0, err := h0.Run(ctx, "web-0")
	if err != nil {
		return err
	}
	web1, err := h1.Run(ctx, "web-1")
	if err != nil {
		return err
	}
	fmt.Printf("  vm-0: nerdctl container web-0 got %s (provisioned on the NIC)\n", web0.IP)
	fmt.Printf("  vm-1: nerdctl container web-1 got %s (added to the NIC by the agent through ARM)\n", web1.IP)

	step("vm-0: a Docker-style container (a network namespace, as `docker run --network none`) attached with nicpoolctl attach.")
	dock, err := tb.AttachContainer(ctx, vm0)
	if err != nil {
		return err
	}
	fmt.Printf("  nicpoolctl attach --id %.12s... <netns>: %s\n", dock.ID, dock.IP)

	ns0, err := web0.NetNS()
	if err != nil {
		return err
	}
	d.closers = append(d.closers, func() { _ = ns0.Close() })
	ns1, err := web1.NetNS()
	if err != nil {
		return err
	}
	d.closers = append(d.closers, func() { _ = ns1.Close() })
	if err := vmhost.StartProbeServers(ctx, tb, ns0, ns1, dock.NS); err != nil {
		return err
	}
	var paths []testbed.Path
	paths = append(paths, vmhost.Paths(tb, vm0, "web-0 (vm-0)", web0.IP, ns0)...)
	paths = append(paths, vmhost.Paths(tb, vm1, "web-1 (vm-1)", web1.IP, ns1)...)
	paths = append(paths, vmhost.Paths(tb, vm0, "docker (vm-0)", dock.IP, dock.NS)...)
	paths = append(paths,
		testbed.Path{Name: "container to container, across VMs", From: ns0, FromName: "web-0 (vm-0)", To: web1.IP, ToName: "web-1 (vm-1)", WantSeen: web0.IP},
		testbed.Path{Name: "docker to nerdctl container, same VM", From: dock.NS, FromName: "docker (vm-0)", To: web0.IP, ToName: "web-0 (vm-0)", WantSeen: dock.IP},
	)
	step("Connectivity (the source address each destination saw).")
	results := testbed.RunPaths(ctx, paths, settleWait)
	for _, c := range []vmhost.Ctr{web0, web1} {
		for _, s := range []*testbed.Site{peer, onprem} {
			seen, err := vmhost.EchoFrom(ctx, s, c.IP)
			results = append(results, row(s.Name+" to the container's own echo server", s.Name, c.Name, c.IP, s.HostIP, seen, err))
		}
	}

	// nerdctl rm gives the IP back: the agent no longer records it (it
	// releases the IP right after deleting the veth in the background).
	rmErr := h0.Rm(ctx, web0.ID)
	var seen string
	for deadline := time.Now().Add(settleWait); rmErr == nil && seen == ""; {
		held, err := tb.AgentAllocations(ctx, vm0)
		switch {
		case err != nil:
			rmErr = err
		case held[web0.IP] == "":
			seen = "released"
		case time.Now().After(deadline):
			rmErr = fmt.Errorf("after %s the agent still records %s for %s", settleWait, web0.IP, held[web0.IP])
		default:
			time.Sleep(100 * time.Millisecond)
		}
	}
	results = append(results, row("nerdctl rm returns the IP to vm-0's pool", "nerdctl rm", "web-0", web0.IP, "released", seen, rmErr))
	printTable(results)
	for _, r := range results {
		if !r.OK() {
			d.failed++
			fmt.Printf("FAILED: %s: %v\n", r.Name, r.Err)
		}
	}
	return nil
}

// printTable prints the rows aligned (testbed.FormatMatrix's columns are
// narrower than these names).
func printTable(results []testbed.PathResult) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ROW\tFROM\tTO\tTO IP\tSOURCE SEEN\tRESULT")
	for _, r := range results {
		seen := r.Seen
		if r.Err != nil {
			seen = "(no connection)"
		}
		verdict := "ok"
		switch {
		case r.OK():
		case r.WantFail:
			verdict = "FAIL (expected blocked)"
		default:
			verdict = "FAIL (want " + r.WantSeen + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.FromName, r.ToName, r.To, seen, verdict)
	}
	_ = w.Flush()
}
