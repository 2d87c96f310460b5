package standalone_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/test/cluster"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// burst is how many containers TestNerdctl starts at once.
const burst = 100

// burstWait bounds the burst: 100 `nerdctl run` (each a containerd task,
// a runc create with nerdctl's CNI hook, a runc start) on a loaded 2-core
// CI machine, plus the agent's restart; generous, not a timing assertion.
const burstWait = 8 * time.Minute

// nerdctlHost is a testbed VM used as a container host without Kubernetes:
// Debian's containerd (test/cluster's Runtime) and nerdctl, whose CNI
// directories are the ones the VM's standalone agent installs into.
type nerdctlHost struct {
	tb    *testbed.Testbed
	vm    *testbed.VM
	rt    *cluster.Runtime
	bin   string
	image cluster.Image
	data  string // nerdctl's --data-root
}

// startNerdctlHost starts containerd on vm and imports the echo image into
// nerdctl's containerd namespace.
func startNerdctlHost(t *testing.T, tb *testbed.Testbed, vm *testbed.VM) *nerdctlHost {
	t.Helper()
	h := &nerdctlHost{tb: tb, vm: vm, bin: filepath.Join(testenv.RepoRoot(), "bin", "node", "nerdctl")}
	if _, err := os.Stat(h.bin); err != nil {
		t.Fatalf("nerdctl is missing (make setup runs hack/nerdctl.sh): %v", err)
	}
	var err error
	if h.image, err = cluster.EchoImage(""); err != nil {
		t.Fatalf("the echo image is missing (make test runs hack/test-images.sh): %v", err)
	}
	// nerdctl refuses to run without the plugins of its default bridge
	// network, which a host gets from containernetworking-plugins.
	if err := cluster.CopyReferencePlugins(vm.CNIBinDir, "bridge", "host-local", "portmap", "firewall", "tuning", "loopback"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h.data = filepath.Join(dir, "nerdctl")
	h.rt, err = cluster.StartRuntime(t.Context(), vm, filepath.Join(dir, "runtime"))
	t.Cleanup(func() {
		if h.rt == nil {
			return
		}
		if t.Failed() {
			if b, err := os.ReadFile(h.rt.Log()); err == nil {
				t.Logf("containerd log:\n%s", tail(string(b), 40))
			}
		}
		if err := h.rt.Close(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.rt.ImportImage(t.Context(), "default", h.image.File); err != nil {
		t.Fatal(err)
	}
	return h
}

// nerdctl runs nerdctl on the host with the VM's CNI directories.
func (h *nerdctlHost) nerdctl(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{h.bin, "--address", cluster.RuntimeSocket, "--namespace", "default",
		"--data-root", h.data, "--cgroup-manager", "cgroupfs",
		"--cni-path", h.vm.CNIBinDir, "--cni-netconfpath", h.vm.CNIConfDir}, args...)
	out, err := h.rt.ExecContext(ctx, argv...)
	return strings.TrimSpace(out), err
}

// ctr is a container nerdctl started.
type ctr struct {
	Name, ID string
	Pid      int
	IP       string
}

// cniID is the container ID nerdctl's CNI hook passes: namespace-ID.
func (c ctr) cniID() string { return "default-" + c.ID }

// run starts the echo image as a detached container on the nicpool network.
func (h *nerdctlHost) run(ctx context.Context, name string) (ctr, error) {
	id, err := h.nerdctl(ctx, "run", "-d", "--name", name, "--net", "nicpool", "--cgroup-parent", h.rt.CgroupParent(), h.image.Ref)
	if err != nil {
		return ctr{}, err
	}
	return h.inspect(ctx, id)
}

func (h *nerdctlHost) inspect(ctx context.Context, id string) (ctr, error) {
	out, err := h.nerdctl(ctx, "inspect", "--format", "{{.ID}} {{.Name}} {{.State.Pid}} {{.NetworkSettings.IPAddress}}", id)
	if err != nil {
		return ctr{}, err
	}
	f := strings.Fields(out)
	if len(f) != 4 {
		return ctr{}, fmt.Errorf("nerdctl inspect %s said %q, not ID, name, PID and IP", id, out)
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil {
		return ctr{}, fmt.Errorf("nerdctl inspect %s: PID %q: %w", id, f[2], err)
	}
	return ctr{ID: f[0], Name: f[1], Pid: pid, IP: f[3]}, nil
}

// running lists the containers nerdctl reports running, by ID.
func (h *nerdctlHost) running(ctx context.Context) (map[string]ctr, error) {
	out, err := h.nerdctl(ctx, "ps", "-q", "--no-trunc")
	if err != nil {
		return nil, err
	}
	all := map[string]ctr{}
	for _, id := range strings.Fields(out) {
		c, err := h.inspect(ctx, id)
		if err != nil {
			return nil, err
		}
		all[c.ID] = c
	}
	return all, nil
}

// netns is c's network namespace as a testbed namespace, for probes.
func (c ctr) netns(t *testing.T) *testbed.Namespace {
	t.Helper()
	n, err := ns.GetNS(fmt.Sprintf("/proc/%d/ns/net", c.Pid))
	if err != nil {
		t.Fatalf("open network namespace of %s: %v", c.Name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return &testbed.Namespace{Name: c.Name, NetNS: n}
}

// TestNerdctl runs the standalone agent as its own process on a VM with
// Debian's containerd and nerdctl, for each pool source: `nerdctl run --net
// nicpool` gets a VNet IP of the VM's NIC, reached from the peered VNet and
// on-premises and reaching the internet through SNAT to the VM's primary
// IP; `nerdctl rm` gives it back; 100 `nerdctl run -d` at once, with the
// agent killed with SIGKILL mid-burst and restarted, all get unique IPs and
// the agent leaks nothing: after the burst every IP it records is held by
// exactly one running container, each on the VM's NIC.
func TestNerdctl(t *testing.T) {
	for _, source := range []string{"imds", "arm"} {
		t.Run(source, func(t *testing.T) { testNerdctl(t, source) })
	}
}

func testNerdctl(t *testing.T, source string) {
	tb := newTestbed(t, 1)
	vm := tb.VMs[0]
	var provisioned []string
	var extra []string
	if source == "imds" {
		// The administrator provisioned enough for the burst and the
		// first container.
		provisioned = provision(t, tb, vm, burst+4)
	} else {
		extra = append(extra, "--warm-ip-target=16")
	}
	if err := tb.StartStandaloneAgent(t.Context(), vm, source, extra...); err != nil {
		t.Fatal(err)
	}
	waitInstalled(t, vm)
	h := startNerdctlHost(t, tb, vm)
	ctx := t.Context()

	// One container, its connectivity, and nerdctl rm.
	first, err := h.run(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("nerdctl run --net nicpool: %s got %s", first.Name, first.IP)
	if source == "imds" && !contains(provisioned, first.IP) {
		t.Fatalf("%s got %s, not one of the provisioned IPs", first.Name, first.IP)
	}
	if nic := nicIPs(t, tb, vm); nic[first.IP] == "" || first.IP == vm.PrimaryIP {
		t.Fatalf("%s got %s, not a secondary IP of %s's NIC (%v)", first.Name, first.IP, vm.Name, nic)
	}
	checkAudit(t, h, nil)
	results := connectivity(t, tb, first, first.netns(t))
	t.Logf("connectivity of a nerdctl container (%s source):\n%s", source, testbed.FormatMatrix(results))
	for _, r := range results {
		if !r.OK() {
			t.Errorf("path %q failed", r.Name)
		}
	}
	if _, err := h.nerdctl(ctx, "rm", "-f", first.ID); err != nil {
		t.Fatal(err)
	}
	held, err := tb.AgentAllocations(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := held[first.IP]; ok {
		t.Fatalf("after nerdctl rm the agent still records %s for %s", first.IP, id)
	}
	if t.Failed() {
		return
	}

	// The burst, with the agent killed in the middle.
	start := time.Now()
	ctrs, retried := runBurst(t, h, func() {
		vm.Agent.Kill()
		if err := vm.Agent.Start(ctx); err != nil {
			t.Errorf("restart the agent: %v", err)
		}
	})
	t.Logf("%d containers running after %s (%d nerdctl run retried after meeting the killed agent)", burst, time.Since(start).Round(time.Second), retried)
	seen := map[string]string{}
	for _, c := range ctrs {
		if prev, dup := seen[c.IP]; dup {
			t.Fatalf("IP %s given to %s and %s", c.IP, prev, c.Name)
		}
		seen[c.IP] = c.Name
		if source == "imds" && !contains(provisioned, c.IP) {
			t.Errorf("%s got %s, not one of the provisioned IPs", c.Name, c.IP)
		}
	}
	checkAudit(t, h, provisioned)
	if t.Failed() {
		return
	}

	// nerdctl rm of everything gives every IP back.
	ids := make([]string, 0, len(ctrs))
	for _, c := range ctrs {
		ids = append(ids, c.ID)
	}
	rmCtx, cancel := context.WithTimeout(ctx, burstWait)
	defer cancel()
	if _, err := h.nerdctl(rmCtx, append([]string{"rm", "-f"}, ids...)...); err != nil {
		t.Fatal(err)
	}
	if held, err := tb.AgentAllocations(ctx, vm); err != nil || len(held) != 0 {
		t.Fatalf("after nerdctl rm of every container the agent holds %v (%v)", held, err)
	}
}

// runBurst starts burst containers at once and calls kill once some of
// them got an IP and others are still starting. A run that met the killed
// agent fails; like a script or an orchestrator it is removed and retried.
func runBurst(t *testing.T, h *nerdctlHost, kill func()) ([]ctr, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), burstWait)
	defer cancel()
	ctrs := make([]ctr, burst)
	var mu sync.Mutex
	var errs []error
	retried := 0
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			name := fmt.Sprintf("burst-%03d", i)
			for {
				c, err := h.run(ctx, name)
				if err == nil {
					ctrs[i] = c
					return
				}
				// Whatever the failed run left (a created container,
				// its CNI result) goes with its DEL.
				_, rmErr := h.nerdctl(ctx, "rm", "-f", name)
				if ctx.Err() != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w (rm: %v)", name, err, rmErr))
					mu.Unlock()
					return
				}
				mu.Lock()
				retried++
				mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		})
	}
	// Kill once the burst is under way: a fifth of the containers hold an
	// IP, the others are still to come.
	for {
		held, _ := h.tb.AgentAllocations(ctx, h.vm)
		if len(held) >= burst/5 {
			break
		}
		if ctx.Err() != nil {
			t.Errorf("the burst did not get going within %s", burstWait)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	kill()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("nerdctl run failed after retries: %v", err)
	}
	return ctrs, retried
}

// checkAudit checks that the agent records exactly the running containers:
// every IP held by exactly one running container under that container's
// ID, no record of a container that is gone, no IP twice, each IP a
// configuration of the VM's NIC (one of provisioned when given).
func checkAudit(t *testing.T, h *nerdctlHost, provisioned []string) {
	t.Helper()
	ctx := t.Context()
	running, err := h.running(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held, err := h.tb.AgentAllocations(ctx, h.vm)
	if err != nil {
		t.Fatal(err)
	}
	nic := nicIPs(t, h.tb, h.vm)
	var problems []string
	byIP := map[string]string{}
	for _, c := range running {
		if prev, dup := byIP[c.IP]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s both have %s", prev, c.Name, c.IP))
		}
		byIP[c.IP] = c.Name
		if held[c.IP] != c.cniID() {
			problems = append(problems, fmt.Sprintf("%s runs with %s but the agent records %q for that IP", c.Name, c.IP, held[c.IP]))
		}
	}
	for ip, id := range held {
		if _, ok := byIP[ip]; !ok {
			problems = append(problems, fmt.Sprintf("the agent records %s for %s, which no running container holds (leaked)", ip, id))
		}
		if nic[ip] == "" {
			problems = append(problems, fmt.Sprintf("the agent hands out %s, which is not on %s's NIC", ip, h.vm.Name))
		}
		if provisioned != nil && !contains(provisioned, ip) {
			problems = append(problems, fmt.Sprintf("the agent hands out %s, which the administrator did not provision", ip))
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("audit of %d running containers and %d agent records:\n  %s", len(running), len(held), strings.Join(problems, "\n  "))
	}
}

// nicIPs are the IPs of vm's NIC as ARM has them, keyed by IP, with the
// name of their IP configuration; it fails on an IP configured twice.
func nicIPs(t *testing.T, tb *testbed.Testbed, vm *testbed.VM) map[string]string {
	t.Helper()
	co, err := armsimtest.ClientOptions(tb.Sim)
	if err != nil {
		t.Fatal(err)
	}
	nics, err := azure.NewNICClient(azure.Config{ClientOptions: co, Credential: armsimtest.Credential{}, LROTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	nicID, err := nics.FindNICForVM(t.Context(), vm.VMID)
	if err != nil {
		t.Fatal(err)
	}
	nic, err := nics.GetNIC(t.Context(), nicID)
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, c := range nicsync.Configs(nic) {
		if prev, dup := ips[c.IP]; dup {
			t.Errorf("%s's NIC has %s in both %s and %s", vm.Name, c.IP, prev, c.Name)
		}
		ips[c.IP] = c.Name
	}
	return ips
}

// connectivity runs the promises for a nerdctl container c (its namespace
// n): the peered VNet and on-premises reach it (the echo server the
// container runs, and a probe in its namespace), it reaches them and the
// internet through SNAT to the VM's primary IP, and the internet does not
// reach it.
func connectivity(t *testing.T, tb *testbed.Testbed, c ctr, n *testbed.Namespace) []testbed.PathResult {
	t.Helper()
	peer, onprem, inet := tb.Sites["peer"], tb.Sites["onprem"], tb.Sites["internet"]
	for _, s := range []*testbed.Namespace{n, peer.NS, onprem.NS, inet.NS} {
		if err := tb.StartProbeServer(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	name := "nerdctl:" + c.Name
	results := testbed.RunPaths(t.Context(), []testbed.Path{
		{Name: "peered VNet to container", From: peer.NS, FromName: "peer-vnet", To: c.IP, ToName: name, WantSeen: peer.HostIP},
		{Name: "on-premises to container", From: onprem.NS, FromName: "on-prem", To: c.IP, ToName: name, WantSeen: onprem.HostIP},
		{Name: "container to peered VNet", From: n, FromName: name, To: peer.HostIP, ToName: "peer-vnet", WantSeen: c.IP},
		{Name: "container to on-premises", From: n, FromName: name, To: onprem.HostIP, ToName: "on-prem", WantSeen: c.IP},
		{Name: "container to internet (SNAT)", From: n, FromName: name, To: inet.HostIP, ToName: "internet", WantSeen: tb.VMs[0].PrimaryIP},
		{Name: "internet to container (blocked)", From: inet.NS, FromName: "internet", To: c.IP, ToName: name, WantFail: true},
	}, settleWait)
	// The container's own process: its echo server answers the peered
	// VNet and on-premises with their own addresses.
	for _, s := range []*testbed.Site{peer, onprem} {
		r, err := cluster.GetFrom(t.Context(), s.NS, fmt.Sprintf("http://%s:8080/", c.IP))
		if err != nil || r.SourceIP() != s.HostIP {
			t.Errorf("%s to the echo server in %s: saw %q (%v), want %s", s.Name, c.Name, r.SourceIP(), err, s.HostIP)
		}
	}
	return results
}
