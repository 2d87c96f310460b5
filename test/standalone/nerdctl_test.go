package standalone_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
	"github.com/nicpool/nicpool/test/standalone/vmhost"
)

// burst is how many containers TestNerdctl starts at once.
const burst = 100

// burstWait bounds the burst: 100 `nerdctl run` (each a containerd task,
// a runc create with nerdctl's CNI hook, a runc start) on a loaded 2-core
// CI machine, plus the agent's restart; generous, not a timing assertion.
const burstWait = 8 * time.Minute

// startNerdctlHost starts containerd and nerdctl on vm (vmhost.Nerdctl).
func startNerdctlHost(t *testing.T, tb *testbed.Testbed, vm *testbed.VM) *vmhost.Nerdctl {
	t.Helper()
	h, err := vmhost.StartNerdctl(t.Context(), tb, vm, t.TempDir())
	t.Cleanup(func() {
		if t.Failed() && h.Runtime != nil {
			if b, err := os.ReadFile(h.Runtime.Log()); err == nil {
				t.Logf("containerd log:\n%s", tail(string(b), 40))
			}
		}
		if err := h.Close(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
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
	first, err := h.Run(ctx, "first")
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
	results := connectivity(t, tb, first)
	t.Logf("connectivity of a nerdctl container (%s source):\n%s", source, testbed.FormatMatrix(results))
	for _, r := range results {
		if !r.OK() {
			t.Errorf("path %q failed", r.Name)
		}
	}
	if err := h.Rm(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, tb, vm, "nerdctl rm of "+first.Name, func(held map[string]string) bool { _, ok := held[first.IP]; return !ok })
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
	if err := h.Rm(rmCtx, ids...); err != nil {
		t.Fatal(err)
	}
	waitHeld(t, tb, vm, "nerdctl rm of every container", func(held map[string]string) bool { return len(held) == 0 })
}

// runBurst starts burst containers at once and calls kill once some of
// them got an IP and others are still starting. A run that met the killed
// agent fails; like a script or an orchestrator it is removed and retried.
func runBurst(t *testing.T, h *vmhost.Nerdctl, kill func()) ([]vmhost.Ctr, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), burstWait)
	defer cancel()
	ctrs := make([]vmhost.Ctr, burst)
	var mu sync.Mutex
	var errs []error
	retried := 0
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			name := fmt.Sprintf("burst-%03d", i)
			for {
				c, err := h.Run(ctx, name)
				if err == nil {
					ctrs[i] = c
					return
				}
				// Whatever the failed run left (a created container,
				// its CNI result) goes with its DEL.
				rmErr := h.Rm(ctx, name)
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
		held, _ := h.TB.AgentAllocations(ctx, h.VM)
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
// configuration of the VM's NIC (one of provisioned when given). The agent
// releases an IP after a DEL's answer, once the veth is deleted in the
// background: the audit is repeated until it holds or settleWait passes.
func checkAudit(t *testing.T, h *vmhost.Nerdctl, provisioned []string) {
	t.Helper()
	deadline := time.Now().Add(settleWait)
	for {
		problems, running, held, err := audit(t.Context(), h, provisioned)
		if err != nil {
			t.Fatal(err)
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("audit of %d running containers and %d agent records (after %s):\n  %s", running, held, settleWait, strings.Join(problems, "\n  "))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func audit(ctx context.Context, h *vmhost.Nerdctl, provisioned []string) (problems []string, running, records int, err error) {
	ctrs, err := h.Running(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	held, err := h.TB.AgentAllocations(ctx, h.VM)
	if err != nil {
		return nil, 0, 0, err
	}
	nic, err := vmhost.NICIPs(ctx, h.TB, h.VM)
	if err != nil {
		problems = append(problems, err.Error())
	}
	byIP := map[string]string{}
	for _, c := range ctrs {
		if prev, dup := byIP[c.IP]; dup {
			problems = append(problems, fmt.Sprintf("%s and %s both have %s", prev, c.Name, c.IP))
		}
		byIP[c.IP] = c.Name
		if held[c.IP] != c.CNIID() {
			problems = append(problems, fmt.Sprintf("%s runs with %s but the agent records %q for that IP", c.Name, c.IP, held[c.IP]))
		}
	}
	for ip, id := range held {
		if _, ok := byIP[ip]; !ok {
			problems = append(problems, fmt.Sprintf("the agent records %s for %s, which no running container holds (leaked)", ip, id))
		}
		if nic[ip] == "" {
			problems = append(problems, fmt.Sprintf("the agent hands out %s, which is not on %s's NIC", ip, h.VM.Name))
		}
		if provisioned != nil && !contains(provisioned, ip) {
			problems = append(problems, fmt.Sprintf("the agent hands out %s, which the administrator did not provision", ip))
		}
	}
	sort.Strings(problems)
	return problems, len(ctrs), len(held), nil
}

// waitHeld polls the agent's records until done says so or settleWait
// passes (a DEL's release follows its answer, once the veth is deleted).
func waitHeld(t *testing.T, tb *testbed.Testbed, vm *testbed.VM, what string, done func(held map[string]string) bool) {
	t.Helper()
	deadline := time.Now().Add(settleWait)
	for {
		held, err := tb.AgentAllocations(t.Context(), vm)
		if err != nil {
			t.Fatal(err)
		}
		if done(held) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %s the agent still holds %v", what, settleWait, held)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nicIPs are the IPs of vm's NIC (vmhost.NICIPs); an IP configured twice
// fails the test.
func nicIPs(t *testing.T, tb *testbed.Testbed, vm *testbed.VM) map[string]string {
	t.Helper()
	ips, err := vmhost.NICIPs(t.Context(), tb, vm)
	if err != nil {
		t.Error(err)
	}
	return ips
}

// connectivity runs the promises for a nerdctl container c (vmhost.Paths)
// and checks that the container's own process, its echo server, answers
// the peered VNet and on-premises with their own addresses.
func connectivity(t *testing.T, tb *testbed.Testbed, c vmhost.Ctr) []testbed.PathResult {
	t.Helper()
	n, err := c.NetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Close() }()
	if err := vmhost.StartProbeServers(t.Context(), tb, n); err != nil {
		t.Fatal(err)
	}
	results := testbed.RunPaths(t.Context(), vmhost.Paths(tb, tb.VMs[0], "nerdctl:"+c.Name, c.IP, n), settleWait)
	for _, s := range []*testbed.Site{tb.Sites["peer"], tb.Sites["onprem"]} {
		if seen, err := vmhost.EchoFrom(t.Context(), s, c.IP); err != nil || seen != s.HostIP {
			t.Errorf("%s to the echo server in %s: saw %q (%v), want %s", s.Name, c.Name, seen, err, s.HostIP)
		}
	}
	return results
}
