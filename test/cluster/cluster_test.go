package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/test/cluster"
)

// One cluster serves every test of the package: starting nodes costs far
// more than any test.
var (
	cl          *cluster.Cluster
	workDir     string
	installOnce sync.Once
	installErr  error
)

// releaseCooldown is the agents' --release-cooldown here: short, so that
// tests see IPs go back to the VNet.
const releaseCooldown = 10 * time.Second

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: the real-node cluster needs root (namespaces, mounts, cgroups); CI runs it as root")
		return 0
	}
	cfg := cluster.Config{Nodes: 3, PutLatency: 100 * time.Millisecond,
		Values: []string{"warmPool.releaseCooldown=" + releaseCooldown.String()},
		Logf:   func(format string, args ...any) { fmt.Printf("cluster: "+format+"\n", args...) }}
	cfg.Defaults()
	if err := cfg.Check(); err != nil {
		fmt.Println(err)
		if os.Getenv("CI") == "" {
			fmt.Println("SKIP: the real-node cluster tests need the binaries and images above")
			return 0
		}
		return 1
	}
	var err error
	if workDir, err = os.MkdirTemp("", "nicpool-cluster-"); err != nil {
		fmt.Println(err)
		return 1
	}
	cfg.WorkDir = workDir
	c, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		fmt.Println("start cluster:", err)
		if c != nil {
			dumpLogs(c)
			c.Close()
		}
		return 1
	}
	cl = c
	code := m.Run()
	if code != 0 {
		dumpLogs(c)
	}
	c.Close()
	if err := checkTeardown(c); err != nil {
		fmt.Println("teardown left something behind:", err)
		code = 1
	}
	if keep := os.Getenv("E2E_LOG_KEEP"); keep == "" {
		_ = os.RemoveAll(workDir)
	}
	return code
}

// checkTeardown asserts that Close left nothing on the host: no process or
// cgroup of the nodes, no namespace of the testbed, no changed global
// sysctl, no process still running a binary of the cluster.
func checkTeardown(c *cluster.Cluster) error {
	var problems []string
	problems = append(problems, cluster.Leftovers()...)
	for _, s := range c.ChangedSysctls() {
		problems = append(problems, "sysctl "+s)
	}
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("npe2e-%d-", os.Getpid())) {
			problems = append(problems, "network namespace "+e.Name())
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), workDir) {
			problems = append(problems, fmt.Sprintf("process %s: %s", filepath.Base(filepath.Dir(p)), strings.ReplaceAll(string(data), "\x00", " ")))
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, workDir) {
			problems = append(problems, "mount "+line)
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n  "))
	}
	return nil
}

func dumpLogs(c *cluster.Cluster) {
	logs, _ := filepath.Glob(filepath.Join(workDir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(workDir, "nodes", "*", "*.log"))
	for _, l := range append(logs, more...) {
		data, _ := os.ReadFile(l)
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Printf("--- %s (last %d lines)\n%s\n", l, len(lines), strings.Join(lines, "\n"))
	}
	if out, err := c.Kubectl(context.Background(), "get", "pods", "-A", "-o", "wide"); err == nil {
		fmt.Printf("--- kubectl get pods -A -o wide\n%s", out)
	}
	if keep := os.Getenv("E2E_LOG_KEEP"); keep != "" {
		fmt.Printf("--- logs kept in %s\n", workDir)
	}
}

// installed installs nicpool with Helm (once per package run) and waits
// until every node is Ready and CoreDNS runs.
func installed(t *testing.T) {
	t.Helper()
	installOnce.Do(func() {
		ctx := context.Background()
		if installErr = cl.InstallNicpool(ctx); installErr != nil {
			return
		}
		if installErr = cl.WaitNodesReady(ctx, 3*time.Minute); installErr != nil {
			return
		}
		installErr = cl.WaitReplicasReady(ctx, "kube-system", "coredns", 2*time.Minute)
	})
	if installErr != nil {
		t.Fatalf("install nicpool: %v", installErr)
	}
}

// TestNodeReadyOnlyAfterPoolAndConflist: before nicpool is installed every
// node is NotReady because its runtime's network is not ready (no CNI
// configuration); after `helm install` each node becomes Ready, and by then
// its agent has installed the conflist and its pool holds IPs on the NIC.
func TestNodeReadyOnlyAfterPoolAndConflist(t *testing.T) {
	ctx := context.Background()
	claimed := false
	installOnce.Do(func() {
		// This test installs nicpool itself, observing the nodes around it.
		claimed = true
		installErr = errors.New("nicpool was not installed: TestNodeReadyOnlyAfterPoolAndConflist failed before")
	})
	if !claimed {
		t.Skip("nicpool was installed by an earlier test: the nodes are no longer fresh")
	}
	for _, n := range cl.Nodes {
		err := waitUntil(ctx, time.Minute, func() error {
			cond, err := cl.NodeReady(ctx, n.Name)
			if err != nil {
				return err
			}
			if cond == nil {
				return errors.New("no Ready condition yet")
			}
			if cond.Status == corev1.ConditionTrue {
				t.Fatalf("node %s is Ready before nicpool is installed", n.Name)
			}
			if !strings.Contains(cond.Message, "NetworkReady=false") {
				return fmt.Errorf("node %s NotReady for another reason: %s", n.Name, cond.Message)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files, _ := os.ReadDir(n.HostPath("/etc/cni/net.d")); len(files) != 0 {
			t.Fatalf("node %s has CNI configuration before nicpool is installed: %v", n.Name, files)
		}
		if v, err := n.IPForward(); err != nil || v != "0" {
			t.Fatalf("node %s forwards IPv4 (%q, %v) before nicpool is installed; the testbed starts nodes with it off", n.Name, v, err)
		}
	}
	if err := cl.InstallNicpool(ctx); err != nil {
		installErr = err
		t.Fatal(err)
	}
	t0 := time.Now()
	// Watch each node turn Ready and check, at that moment, the conflist
	// and the pool's IPs.
	pending := map[string]*cluster.Node{}
	for _, n := range cl.Nodes {
		pending[n.Name] = n
	}
	err := waitUntil(ctx, 3*time.Minute, func() error {
		for name, n := range pending {
			cond, err := cl.NodeReady(ctx, name)
			if err != nil {
				return err
			}
			if cond == nil || cond.Status != corev1.ConditionTrue {
				continue
			}
			files, _ := filepath.Glob(filepath.Join(n.HostPath("/etc/cni/net.d"), "*.conflist"))
			if len(files) == 0 {
				t.Errorf("node %s is Ready without a conflist", name)
			}
			pool := &v1.NodeIPPool{}
			if err := cl.Env.Client.Get(ctx, clientKey(name), pool); err != nil {
				return err
			}
			// The agent's container sees /proc/sys read-only; the
			// DaemonSet's writable mount of the node's IPv4 sysctls is
			// what lets it route pod traffic on a node that did not.
			if v, err := n.IPForward(); err != nil || v != "1" {
				return fmt.Errorf("node %s is Ready but does not forward IPv4 yet (%q, %v)", name, v, err)
			}
			if len(pool.Status.IPs) == 0 || cl.NICIPCount(n) == 0 {
				t.Errorf("node %s is Ready with %d IPs in its pool and %d on its NIC", name, len(pool.Status.IPs), cl.NICIPCount(n))
			}
			delete(pending, name)
		}
		if len(pending) > 0 {
			return fmt.Errorf("%d nodes not Ready yet", len(pending))
		}
		return nil
	})
	if err != nil {
		installErr = err
		t.Fatal(err)
	}
	t.Logf("Every node Ready %s after helm install.", time.Since(t0).Round(time.Second))
	if err := cl.WaitReplicasReady(ctx, "kube-system", "coredns", 2*time.Minute); err != nil {
		installErr = err
		t.Fatal(err)
	}
	installErr = nil
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

func waitUntil(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	if err := cl.CreateNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.Clientset.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}
