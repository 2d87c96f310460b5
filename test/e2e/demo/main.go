// Command demo is `make demo`: a real three-node Kubernetes cluster on the
// simulated Azure VNet (containerd, kubelet and kube-proxy on every VM),
// nicpool installed with `helm install`, a Deployment of about 30 pods
// created with kubectl, a Service used by ClusterIP, DNS name and NodePort,
// Services of type LoadBalancer (internal and public) straight to the pods,
// the connectivity matrix from the kubelet-created pods, a storage account
// reached through a VNet service endpoint, and Azure's view of the NICs.
// Everything is torn down on exit or Ctrl-C; --keep leaves the
// cluster running until Ctrl-C and prints a KUBECONFIG.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nicpool/nicpool/test/cluster"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	nodes, pods int
	keep        bool
}

func run() error {
	var o options
	flag.IntVar(&o.nodes, "nodes", 3, "number of simulated VMs, each a Kubernetes node")
	flag.IntVar(&o.pods, "pods", 30, "replicas of the demo Deployment, spread over the nodes")
	flag.BoolVar(&o.keep, "keep", false, "keep the cluster running until Ctrl-C and print a KUBECONFIG to explore it")
	flag.Parse()
	if o.nodes < 2 || o.nodes > 10 || o.pods < o.nodes || o.pods > 200 {
		return errors.New("--nodes must be 2..10 and --pods between --nodes and 200")
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root: it creates network namespaces, mounts and cgroups (run `sudo make demo`)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	work, err := os.MkdirTemp("", "nicpool-demo-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	start := time.Now()
	step("Starting a %d-node cluster on the simulated Azure VNet (work dir %s).", o.nodes, work)
	c, err := cluster.Start(ctx, cluster.Config{
		Nodes: o.nodes, WorkDir: work, PutLatency: 200 * time.Millisecond,
		Values: append([]string{"warmPool.releaseCooldown=30s",
			// The agents learn Microsoft.Storage's prefixes (the Storage.<Region>
			// service tag in Azure; the storage site's range here).
			`serviceEndpointPrefixes.Microsoft\.Storage={` + testbed.StorageCIDR + `}`}, serviceLBValues()...),
		// A storage account whose firewall allows the nodes' subnet only.
		Storage: &testbed.StorageConfig{VirtualNetworkRules: []string{"nodes"}},
		Logf:    func(format string, args ...any) { fmt.Printf("  "+format+"\n", args...) },
	})
	if c != nil {
		defer func() {
			fmt.Println("\nTearing down: nodes stopped, cgroups and namespaces removed, sysctls restored.")
			c.Close()
		}()
	}
	if err != nil {
		return err
	}
	d := &demo{c: c, opts: o, work: work}
	if err := d.run(ctx); err != nil {
		return err
	}
	fmt.Printf("\nDemo finished in %s.\n", time.Since(start).Round(time.Second))
	if o.keep {
		d.explore()
		<-ctx.Done()
	}
	return d.failed()
}

func step(format string, args ...any) { fmt.Printf("\n== "+format+"\n", args...) }
