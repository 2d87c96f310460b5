package soak

import (
	"net"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// TestAuditCatchesViolations proves the soak's audit can fail: each case
// breaks one promise in an otherwise clean picture and expects the finding.
func TestAuditCatchesViolations(t *testing.T) {
	vmA := &testbed.VM{Name: "vm-a", VMID: "/vm/a"}
	vmB := &testbed.VM{Name: "vm-b", VMID: "/vm/b"}
	vms := []*testbed.VM{vmA, vmB}
	pod := func(name string, vm *testbed.VM, ips ...string) *testbed.Pod {
		p := &testbed.Pod{Name: name, ContainerID: "id-" + name, VM: vm, Result: &types100.Result{}}
		for _, ip := range ips {
			p.Result.IPs = append(p.Result.IPs, &types100.IPConfig{Address: net.IPNet{IP: net.ParseIP(ip), Mask: net.CIDRMask(32, 32)}})
		}
		if len(ips) > 0 {
			p.IP = ips[0]
		}
		return p
	}
	nic := func(vm *testbed.VM, state string, ips ...string) armsim.NICState {
		n := armsim.NICState{Name: vm.Name + "-nic", VMID: vm.VMID, ProvisioningState: state,
			IPConfigs: []armsim.IPConfigState{{Name: "ipconfig1", IP: "10.0.0." + vm.Name[3:], Primary: true}, {Name: "foreign", IP: "10.0.9.9"}}}
		for _, ip := range ips {
			n.IPConfigs = append(n.IPConfigs, armsim.IPConfigState{Name: "nicpool-" + ip, IP: ip})
		}
		return n
	}
	// Clean: a1 and b1 run, 10.1.0.2 is vm-a's warm IP.
	clean := func() (view, []*testbed.Pod) {
		return view{
			snap:     armsim.Snapshot{NICs: []armsim.NICState{nic(vmA, "Succeeded", "10.1.0.1", "10.1.0.2"), nic(vmB, "Succeeded", "10.2.0.1")}},
			inStatus: map[*testbed.VM][]string{vmA: {"10.1.0.1", "10.1.0.2"}, vmB: {"10.2.0.1"}},
			held:     map[*testbed.VM]map[string]string{vmA: {"10.1.0.1": "id-a1"}, vmB: {"10.2.0.1": "id-b1"}},
			heldErr:  map[*testbed.VM]error{},
		}, []*testbed.Pod{pod("a1", vmA, "10.1.0.1"), pod("b1", vmB, "10.2.0.1")}
	}
	if v, live := clean(); !judge(v, vms, live).settled() {
		t.Fatalf("the clean picture has findings:%s", judge(v, vms, live))
	}
	tests := []struct {
		name    string
		breakIt func(v *view, live *[]*testbed.Pod)
		want    func(f findings) []string
	}{
		{"an IP on two pods", func(v *view, live *[]*testbed.Pod) {
			*live = append(*live, pod("b2", vmB, "10.1.0.1"))
		}, func(f findings) []string { return f.doubles }},
		{"a pod IP not on its node's NIC", func(v *view, live *[]*testbed.Pod) {
			*live = append(*live, pod("a2", vmA, "10.2.0.1"))
		}, func(f findings) []string { return f.misplaced }},
		{"a pod with two IPs", func(v *view, live *[]*testbed.Pod) {
			*live = append(*live, pod("a3", vmA, "10.1.0.2", "10.1.0.3"))
		}, func(f findings) []string { return f.misplaced }},
		{"a NIC IP nobody accounts for", func(v *view, live *[]*testbed.Pod) {
			v.snap.NICs[1] = nic(vmB, "Succeeded", "10.2.0.1", "10.2.0.7")
		}, func(f findings) []string { return f.unaccounted }},
		{"an agent record without a pod", func(v *view, live *[]*testbed.Pod) {
			v.held[vmA]["10.1.0.2"] = "id-gone"
		}, func(f findings) []string { return f.orphaned }},
		{"a status IP the NIC lacks", func(v *view, live *[]*testbed.Pod) {
			v.inStatus[vmB] = append(v.inStatus[vmB], "10.2.0.8")
		}, func(f findings) []string { return f.phantom }},
		{"a NIC left Failed", func(v *view, live *[]*testbed.Pod) {
			v.snap.NICs[0].ProvisioningState = "Failed"
		}, func(f findings) []string { return f.failedNICs }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, live := clean()
			tt.breakIt(&v, &live)
			f := judge(v, vms, live)
			if len(tt.want(f)) == 0 || f.settled() {
				t.Errorf("not found; findings:%s", f)
			}
		})
	}
}

func TestSamplerCatchesBreaches(t *testing.T) {
	s := &limitSampler{vnetLimit: 3, perVMLimit: 2}
	cfgs := func(n int) []armsim.IPConfigState {
		out := []armsim.IPConfigState{{Name: "ipconfig1", IP: "10.0.0.4", Primary: true}}
		for i := range n {
			out = append(out, armsim.IPConfigState{Name: "nicpool-" + string(rune('a'+i)), IP: "10.0.1." + string(rune('1'+i))})
		}
		return out
	}
	s.sample(armsim.Snapshot{NICs: []armsim.NICState{{Name: "a", IPConfigs: cfgs(2)}, {Name: "b", IPConfigs: cfgs(1)}}})
	if _, _, _, b := s.take(); len(b) != 0 {
		t.Fatalf("breaches at the limits: %v", b)
	}
	s.sample(armsim.Snapshot{NICs: []armsim.NICState{{Name: "a", IPConfigs: cfgs(3)}, {Name: "b", IPConfigs: cfgs(1)}}})
	maxVNet, maxNIC, _, b := s.take()
	if maxVNet != 4 || maxNIC != 3 || len(b) != 2 || !strings.Contains(strings.Join(b, " "), "VNet held 4") {
		t.Errorf("peaks %d/%d, breaches %v; want 4/3 and a VNet and a NIC breach", maxVNet, maxNIC, b)
	}
}
