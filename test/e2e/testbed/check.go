package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// AzureView is which IP configuration is on which NIC, as armsim holds it.
func (tb *Testbed) AzureView() string {
	var b strings.Builder
	for _, nic := range tb.Sim.Snapshot().NICs {
		var primary string
		var own, foreign []string
		for _, c := range nic.IPConfigs {
			switch {
			case c.Primary:
				primary = c.IP
			case strings.HasPrefix(c.Name, v1.IPConfigurationPrefix):
				own = append(own, c.IP)
			default:
				foreign = append(foreign, c.Name+"="+c.IP)
			}
		}
		sort.Slice(own, func(i, j int) bool { return netip.MustParseAddr(own[i]).Less(netip.MustParseAddr(own[j])) })
		fmt.Fprintf(&b, "%-10s primary %-12s nicpool IP configurations: %3d %s", nic.Name, primary, len(own), abbreviate(own, 6))
		if len(foreign) > 0 {
			fmt.Fprintf(&b, "  other: %v", foreign)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func abbreviate(s []string, n int) string {
	if len(s) <= n {
		return "[" + strings.Join(s, " ") + "]"
	}
	return "[" + strings.Join(s[:n], " ") + fmt.Sprintf(" ... +%d]", len(s)-n)
}

// CheckInvariants verifies the promises nicpool makes, for the given live
// pods: no IP held by two pods; every pod IP is an IP configuration of its
// own VM's NIC; no NIC carries more nicpool IPs than the per-VM limit; no IP
// configuration appears on two NICs.
func (tb *Testbed) CheckInvariants(pods []*Pod, perVMLimit int) error {
	var problems []string
	owner := map[string]string{}
	for _, p := range pods {
		if prev, dup := owner[p.IP]; dup {
			problems = append(problems, fmt.Sprintf("IP %s held by %s and %s", p.IP, prev, p.Name))
		}
		owner[p.IP] = p.Name
	}
	onNIC := map[string]string{} // IP -> VM ID
	for _, nic := range tb.Sim.Snapshot().NICs {
		own := 0
		for _, c := range nic.IPConfigs {
			if prev, dup := onNIC[c.IP]; dup {
				problems = append(problems, fmt.Sprintf("IP %s on two NICs (%s, %s)", c.IP, prev, nic.VMID))
			}
			onNIC[c.IP] = lower(nic.VMID)
			if !c.Primary && strings.HasPrefix(c.Name, v1.IPConfigurationPrefix) {
				own++
			}
		}
		if own > perVMLimit {
			problems = append(problems, fmt.Sprintf("NIC %s has %d nicpool IPs, above the limit %d", nic.Name, own, perVMLimit))
		}
	}
	for _, p := range pods {
		if onNIC[p.IP] != lower(p.VM.VMID) {
			problems = append(problems, fmt.Sprintf("pod %s holds %s which is not on %s's NIC", p.Name, p.IP, p.VM.Name))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("invariants broken:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// Pool returns the NodeIPPool of a VM.
func (tb *Testbed) Pool(ctx context.Context, vm *VM) (*v1.NodeIPPool, error) {
	pool := &v1.NodeIPPool{}
	if err := tb.Env.Client.Get(ctx, client.ObjectKey{Name: vm.Name}, pool); err != nil {
		return nil, fmt.Errorf("get pool %s: %w", vm.Name, err)
	}
	return pool, nil
}

// TouchPool sets an annotation on a VM's pool, which makes the operator pass over it
// (as `kubectl annotate nodeippool` does): it follows the subnet's service endpoints
// on its passes.
func (tb *Testbed) TouchPool(ctx context.Context, vm *VM) error {
	pool := &v1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: vm.Name}}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"e2e.nicpool.io/touched":%q}}}`, time.Now().Format(time.RFC3339Nano))
	if err := tb.Env.Client.Patch(ctx, pool, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return fmt.Errorf("annotate pool %s: %w", vm.Name, err)
	}
	return nil
}

// NICIPCount is the number of nicpool IP configurations on a VM's NIC.
func (tb *Testbed) NICIPCount(vm *VM) int {
	for _, nic := range tb.Sim.Snapshot().NICs {
		if lower(nic.VMID) != lower(vm.VMID) {
			continue
		}
		n := 0
		for _, c := range nic.IPConfigs {
			if !c.Primary && strings.HasPrefix(c.Name, v1.IPConfigurationPrefix) {
				n++
			}
		}
		return n
	}
	return 0
}

// WaitReady waits until every VM's agent installed its conflist, i.e. the
// node can start pods.
func (tb *Testbed) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, vm := range tb.VMs {
		for {
			if _, _, err := tb.cni(vm); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %s: no conflist installed (see %s)", vm.Name, timeout, vm.Agent.LogPath)
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("wait for %s to be ready: %w", vm.Name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// NodeIPPoolTable is the output of `kubectl get nip -o wide` against the
// testbed's API server.
func (tb *Testbed) NodeIPPoolTable(ctx context.Context) (string, error) {
	kubectl := filepath.Join(tb.Env.AssetsDir, "kubectl")
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", tb.kubeconfig, "get", "nodeippools", "-o", "wide").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kubectl get nodeippools: %w: %s", err, out)
	}
	return string(out), nil
}
