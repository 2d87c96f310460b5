package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// TestFullNodeAndRelease fills one node to the per-VM limit, checks that one
// pod more fails with a clear CNI error instead of a wrong IP, then deletes
// the pods and waits for their IPs to go back to the pool and, after the
// cooldown, back to the VNet.
func TestFullNodeAndRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("250 pods take a while; skipped with -short")
	}
	tb := newTestbed(t, 1, []string{"--alloc-timeout=20s", "--release-cooldown=3s", "--gc-grace=5s"}, nil)
	ctx := context.Background()
	vm := tb.VMs[0]
	pods := startPods(t, tb, vm, "full", v1.MaxIPsPerNode, 16)
	if err := tb.CheckInvariants(pods, v1.MaxIPsPerNode); err != nil {
		t.Fatal(err)
	}

	_, err := tb.StartPod(ctx, vm, "one-too-many")
	if err == nil {
		t.Fatal("pod 251 on a full node got an IP")
	}
	if !strings.Contains(err.Error(), "its maximum") || !strings.Contains(err.Error(), "try again later") {
		t.Errorf("pod 251 failed without saying the node is full: %v", err)
	}
	t.Logf("Pod 251 failed as it should: %v", err)

	keep := pods[:10]
	var wg sync.WaitGroup
	errs := make([]error, len(pods))
	for i, p := range pods[10:] {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = tb.DeletePod(ctx, p) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("delete pods: %v", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for tb.NICIPCount(vm) > len(keep)+32 {
		if time.Now().After(deadline) {
			t.Fatalf("NIC still has %d nicpool IPs 90s after 240 of 250 pods were deleted", tb.NICIPCount(vm))
		}
		time.Sleep(time.Second)
	}
	t.Logf("After deleting 240 pods the NIC holds %d nicpool IPs for %d pods.", tb.NICIPCount(vm), len(keep))
	if err := tb.CheckInvariants(keep, v1.MaxIPsPerNode); err != nil {
		t.Fatal(err)
	}
	if err := tb.StoresMatchPods(ctx, keep); err != nil {
		t.Fatal(err)
	}
}

// TestCrashes kills the agent during a pod burst and the operator during a
// scale-up, as a node losing power would, and checks that everything
// converges with no leaked and no duplicated IP.
func TestCrashes(t *testing.T) {
	tb := newTestbed(t, 2, []string{"--alloc-timeout=30s"}, nil)
	ctx := context.Background()

	agentVM, opVM := tb.VMs[0], tb.VMs[1]
	var live []*testbed.Pod
	var mu sync.Mutex
	var wg sync.WaitGroup
	burst := func(vm *testbed.VM, prefix string, n int) {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := startWithRetry(t, tb, vm, fmt.Sprintf("%s-%d", prefix, i))
				if p != nil {
					mu.Lock()
					live = append(live, p)
					mu.Unlock()
				}
			}()
		}
	}

	burst(agentVM, "agentcrash", 40)
	time.Sleep(1500 * time.Millisecond)
	agentVM.Agent.Kill()
	t.Log("Killed the agent of vm-0 with SIGKILL during a burst of 40 pods.")
	time.Sleep(time.Second)
	if err := agentVM.Agent.Start(ctx); err != nil {
		t.Fatal(err)
	}

	burst(opVM, "opcrash", 60)
	time.Sleep(1 * time.Second)
	tb.Operator.Kill()
	t.Log("Killed the operator with SIGKILL during a scale-up of 60 pods.")
	time.Sleep(2 * time.Second)
	if err := tb.Operator.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(live) != 100 {
		t.Fatalf("%d of 100 pods started", len(live))
	}
	if err := tb.CheckInvariants(live, v1.MaxIPsPerNode); err != nil {
		t.Fatal(err)
	}
	if err := tb.StoresMatchPods(ctx, live); err != nil {
		t.Fatal(err)
	}
	// Status and NIC agree once the operator has caught up: nothing adopted
	// twice, nothing leaked.
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := poolsMatchNICs(ctx, tb)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
}

// startWithRetry starts a pod as kubelet would: a failed ADD is followed by
// a DEL of that sandbox and a new sandbox, until it works or a minute passes.
func startWithRetry(t *testing.T, tb *testbed.Testbed, vm *testbed.VM, name string) *testbed.Pod {
	ctx := context.Background()
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := tb.StartPod(ctx, vm, name)
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Errorf("pod %s never started: %v", name, err)
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func poolsMatchNICs(ctx context.Context, tb *testbed.Testbed) error {
	snap := tb.Sim.Snapshot()
	for _, vm := range tb.VMs {
		pool, err := tb.Pool(ctx, vm)
		if err != nil {
			return err
		}
		var inStatus, onNIC []string
		for _, ip := range pool.Status.IPs {
			inStatus = append(inStatus, string(ip.IP))
		}
		for _, nic := range snap.NICs {
			if !strings.EqualFold(nic.VMID, vm.VMID) {
				continue
			}
			for _, c := range nic.IPConfigs {
				if !c.Primary && strings.HasPrefix(c.Name, v1.IPConfigurationPrefix) {
					onNIC = append(onNIC, c.IP)
				}
			}
		}
		sort.Strings(inStatus)
		sort.Strings(onNIC)
		if strings.Join(inStatus, ",") != strings.Join(onNIC, ",") {
			return fmt.Errorf("%s: pool status has %d IPs, NIC has %d nicpool IPs; they differ", vm.Name, len(inStatus), len(onNIC))
		}
	}
	return nil
}
