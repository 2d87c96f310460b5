package standalone_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
	"github.com/nicpool/nicpool/test/standalone/vmhost"
)

// Bounds of the waits below: generous for a 2-core CI machine running
// every package at once; none is a timing assertion.
const (
	readyWait  = 2 * time.Minute
	settleWait = 30 * time.Second
)

func newTestbed(t *testing.T, vms int) *testbed.Testbed {
	t.Helper()
	tb, err := testbed.New(t.Context(), testbed.Config{VMs: vms, NoKubernetes: true, BinDir: binDir, WorkDir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatalf("start testbed: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, vm := range tb.VMs {
				if b, err := os.ReadFile(filepath.Join(vm.Dir, "agent.log")); err == nil {
					t.Logf("%s agent log:\n%s", vm.Name, tail(string(b), 60))
				}
			}
		}
		tb.Close()
	})
	return tb
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// provision adds n secondary IP configurations to vm's NIC
// (vmhost.Provision) and returns their IPs.
func provision(t *testing.T, tb *testbed.Testbed, vm *testbed.VM, n int) []string {
	t.Helper()
	ips, err := vmhost.Provision(t.Context(), tb, vm, n)
	if err != nil {
		t.Fatal(err)
	}
	return ips
}

// waitInstalled waits for the agent's conflist in vm's CNI directory.
func waitInstalled(t *testing.T, vm *testbed.VM) {
	t.Helper()
	if err := vmhost.WaitInstalled(t.Context(), vm, readyWait); err != nil {
		t.Fatal(err)
	}
}

// TestIMDSDockerHost: a VM whose NIC got three secondary IPs from its
// administrator runs the agent on instance metadata; containers attached
// with nicpoolctl get those IPs (never the primary), are reached from the
// peered VNet and on-premises, reach the internet through SNAT to the VM's
// primary IP, and give their IP back on detach.
func TestIMDSDockerHost(t *testing.T) {
	tb := newTestbed(t, 2)
	vm := tb.VMs[0]
	provisioned := provision(t, tb, vm, 3)
	if err := tb.StartStandaloneAgent(t.Context(), vm, "imds"); err != nil {
		t.Fatal(err)
	}
	waitInstalled(t, vm)
	var ctrs []*testbed.Container
	for range 2 {
		c, err := tb.AttachContainer(t.Context(), vm)
		if err != nil {
			t.Fatal(err)
		}
		if !contains(provisioned, c.IP) {
			t.Fatalf("container got %s, not one of the provisioned %v", c.IP, provisioned)
		}
		ctrs = append(ctrs, c)
	}
	if ctrs[0].IP == ctrs[1].IP {
		t.Fatalf("both containers got %s", ctrs[0].IP)
	}
	a, b := ctrs[0], ctrs[1]
	for _, n := range []*testbed.Namespace{a.NS, b.NS, vm.NS, tb.Sites["peer"].NS, tb.Sites["onprem"].NS, tb.Sites["internet"].NS} {
		if err := tb.StartProbeServer(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	results := testbed.RunPaths(t.Context(), containerPaths(tb, a, b), settleWait)
	t.Logf("connectivity:\n%s", testbed.FormatMatrix(results))
	for _, r := range results {
		if !r.OK() {
			t.Errorf("path %q failed", r.Name)
		}
	}
	if err := tb.DetachContainer(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, tb, vm, "detach of "+a.ID, func(held map[string]string) bool { return len(held) == 1 && held[b.IP] == b.ID })
}

// containerPaths are the promises for containers a and b on one VM.
func containerPaths(tb *testbed.Testbed, a, b *testbed.Container) []testbed.Path {
	peer, onprem, inet := tb.Sites["peer"], tb.Sites["onprem"], tb.Sites["internet"]
	name := func(c *testbed.Container) string { return "ctr-" + c.ID[:6] }
	return []testbed.Path{
		{Name: "container to container", From: a.NS, FromName: name(a), To: b.IP, ToName: name(b), WantSeen: a.IP},
		{Name: "VM to container", From: a.VM.NS, FromName: a.VM.Name, To: a.IP, ToName: name(a), WantSeen: a.VM.PrimaryIP},
		{Name: "peered VNet to container", From: peer.NS, FromName: "peer-vnet", To: a.IP, ToName: name(a), WantSeen: peer.HostIP},
		{Name: "container to peered VNet", From: b.NS, FromName: name(b), To: peer.HostIP, ToName: "peer-vnet", WantSeen: b.IP},
		{Name: "on-premises to container", From: onprem.NS, FromName: "on-prem", To: b.IP, ToName: name(b), WantSeen: onprem.HostIP},
		{Name: "container to internet (SNAT)", From: a.NS, FromName: name(a), To: inet.HostIP, ToName: "internet", WantSeen: a.VM.PrimaryIP},
		{Name: "internet to container (blocked)", From: inet.NS, FromName: "internet", To: a.IP, ToName: name(a), WantFail: true},
	}
}

// TestARMBurstAndAgentKill: a VM's agent keeps its own NIC through ARM; 30
// containers attached at once all get unique VNet IPs on the VM's NIC even
// though the agent is killed with SIGKILL in the middle of the burst and
// restarted; after every container is detached the agent holds nothing.
func TestARMBurstAndAgentKill(t *testing.T) {
	tb := newTestbed(t, 1)
	vm := tb.VMs[0]
	if err := tb.StartStandaloneAgent(t.Context(), vm, "arm", "--warm-ip-target=4"); err != nil {
		t.Fatal(err)
	}
	waitInstalled(t, vm)
	const n = 30
	ctrs := make([]*testbed.Container, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range n {
		wg.Go(func() {
			// An attach that met the killed agent fails; the administrator
			// (or a script) tries again, as runtimes retry ADD.
			deadline := time.Now().Add(readyWait)
			for {
				c, err := tb.AttachContainer(t.Context(), vm)
				if err == nil {
					ctrs[i] = c
					return
				}
				if time.Now().After(deadline) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	// Kill once the burst is under way: some containers attached, others
	// still to come.
	deadline := time.Now().Add(readyWait)
	for {
		held, _ := tb.AgentAllocations(t.Context(), vm)
		if len(held) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the burst did not get going within %s", readyWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	vm.Agent.Kill()
	if err := vm.Agent.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("attaches failed after retries: %v", err)
	}
	seen := map[string]string{}
	for _, c := range ctrs {
		if prev, dup := seen[c.IP]; dup {
			t.Fatalf("IP %s given to %s and %s", c.IP, prev, c.ID)
		}
		seen[c.IP] = c.ID
	}
	// Every record is a live container's (a failed attach's DEL releases
	// its IP once the veth is deleted in the background).
	waitHeld(t, tb, vm, "records of live containers only", func(held map[string]string) bool {
		for ip, id := range held {
			if seen[ip] != id {
				return false
			}
		}
		return true
	})
	for _, c := range ctrs {
		if err := tb.DetachContainer(t.Context(), c); err != nil {
			t.Error(err)
		}
	}
	waitHeld(t, tb, vm, "detach of every container", func(held map[string]string) bool { return len(held) == 0 })
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestARMIdentityWritesOnlyItsOwnNIC: the agent authenticates with its VM's
// managed identity (a token from the instance metadata service the fabric
// serves to that VM only), which may write only that VM's NIC. An agent on
// vm-0 misconfigured with vm-1's ID finds vm-1's NIC (reading is allowed)
// but every write is refused with 403 AuthorizationFailed, and vm-1's NIC
// keeps its IP configurations. (TestNerdctl/arm is the agent growing its
// own NIC with the same identity.)
func TestARMIdentityWritesOnlyItsOwnNIC(t *testing.T) {
	tb := newTestbed(t, 2)
	vm0, vm1 := tb.VMs[0], tb.VMs[1]
	before := nicIPs(t, tb, vm1)
	if err := tb.StartStandaloneAgent(t.Context(), vm0, "arm", "--vm-id="+vm1.VMID, "--warm-ip-target=2"); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(vm0.Dir, "agent.log")
	deadline := time.Now().Add(readyWait)
	for {
		b, _ := os.ReadFile(logPath)
		if i := strings.Index(string(b), "AuthorizationFailed"); i >= 0 {
			line := string(b)[strings.LastIndex(string(b[:i]), "\n")+1:]
			t.Logf("vm-0's agent: %s", strings.SplitN(line, "\n", 2)[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("vm-0's agent logged no AuthorizationFailed for vm-1's NIC within %s", readyWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := nicIPs(t, tb, vm1)
	if len(after) != len(before) {
		t.Fatalf("vm-1's NIC changed under vm-0's identity: %v, was %v", after, before)
	}
	for ip, name := range before {
		if after[ip] != name {
			t.Fatalf("vm-1's NIC changed under vm-0's identity: %v, was %v", after, before)
		}
	}
}
