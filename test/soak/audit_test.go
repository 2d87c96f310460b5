package soak

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// findings is what one audit saw. Safety findings (doubles, misplaced) are
// violations whenever they are seen; the others must be gone once the
// system has settled, and count as leaks when they are not.
type findings struct {
	// doubles: an IP held by two live pods.
	doubles []string
	// misplaced: a live pod without exactly one IP, or whose IP is not an
	// IP configuration of its own node's NIC in ARM.
	misplaced []string
	// unaccounted: a nicpool IP configuration on a NIC that neither a pod
	// on that node nor the node's pool (status.ips, the warm pool) holds.
	unaccounted []string
	// orphaned: an allocation an agent records for no live pod.
	orphaned []string
	// phantom: an IP in a pool's status.ips that its NIC does not hold, or
	// a pod's IP the pool does not list.
	phantom []string
	// failedNICs: a NIC left in provisioningState Failed.
	failedNICs []string
}

func (f findings) safe() bool { return len(f.doubles) == 0 && len(f.misplaced) == 0 }

func (f findings) settled() bool {
	return f.safe() && len(f.unaccounted) == 0 && len(f.orphaned) == 0 && len(f.phantom) == 0 && len(f.failedNICs) == 0
}

func (f findings) String() string {
	var b strings.Builder
	for _, s := range []struct {
		name  string
		items []string
	}{
		{"IP held by two pods", f.doubles}, {"pod IP not on its node's NIC", f.misplaced},
		{"NIC IP nobody accounts for", f.unaccounted}, {"agent record without a pod", f.orphaned},
		{"pool and NIC disagree", f.phantom}, {"NIC in provisioningState Failed", f.failedNICs},
	} {
		if len(s.items) > 0 {
			fmt.Fprintf(&b, "\n    %s (%d): %s", s.name, len(s.items), abbreviate(s.items, 8))
		}
	}
	return b.String()
}

func abbreviate(s []string, n int) string {
	sort.Strings(s)
	if len(s) <= n {
		return strings.Join(s, "; ")
	}
	return strings.Join(s[:n], "; ") + fmt.Sprintf("; ... +%d", len(s)-n)
}

// view is what an audit reads: ARM's NICs, each VM's pool status and its
// agent's record.
type view struct {
	snap     armsim.Snapshot
	inStatus map[*testbed.VM][]string
	held     map[*testbed.VM]map[string]string // IP -> container ID
	heldErr  map[*testbed.VM]error
}

// audit checks the live pods against ARM (armsim's view), the pools and the
// agents' records.
func audit(ctx context.Context, tb *testbed.Testbed, live []*testbed.Pod) (findings, error) {
	v := view{snap: tb.Sim.Snapshot(), inStatus: map[*testbed.VM][]string{},
		held: map[*testbed.VM]map[string]string{}, heldErr: map[*testbed.VM]error{}}
	for _, vm := range tb.VMs {
		pool, err := tb.Pool(ctx, vm)
		if err != nil {
			return findings{}, err
		}
		for _, ip := range pool.Status.IPs {
			v.inStatus[vm] = append(v.inStatus[vm], string(ip.IP))
		}
		v.held[vm], v.heldErr[vm] = tb.AgentAllocations(ctx, vm)
	}
	return judge(v, tb.VMs, live), nil
}

// judge holds the live pods against a view.
func judge(v view, vms []*testbed.VM, live []*testbed.Pod) findings {
	var f findings
	nicIPs := map[string]map[string]bool{} // VM ID -> nicpool IPs on its NIC
	for _, nic := range v.snap.NICs {
		ips := map[string]bool{}
		for _, c := range nic.IPConfigs {
			if !c.Primary && strings.HasPrefix(c.Name, v1.IPConfigurationPrefix) {
				ips[c.IP] = true
			}
		}
		nicIPs[strings.ToLower(nic.VMID)] = ips
		if nic.ProvisioningState == "Failed" {
			f.failedNICs = append(f.failedNICs, nic.Name)
		}
	}
	holder := map[string]*testbed.Pod{}
	onVM := map[*testbed.VM]map[string]*testbed.Pod{}
	for _, p := range live {
		if p.Result == nil || len(p.Result.IPs) != 1 {
			f.misplaced = append(f.misplaced, fmt.Sprintf("%s has %d IPs", p.Name, ipCount(p)))
			continue
		}
		if prev := holder[p.IP]; prev != nil {
			f.doubles = append(f.doubles, fmt.Sprintf("%s held by %s (%s) and %s (%s)", p.IP, prev.Name, prev.VM.Name, p.Name, p.VM.Name))
		}
		holder[p.IP] = p
		if !nicIPs[strings.ToLower(p.VM.VMID)][p.IP] {
			f.misplaced = append(f.misplaced, fmt.Sprintf("%s holds %s, not on %s's NIC", p.Name, p.IP, p.VM.Name))
		}
		if onVM[p.VM] == nil {
			onVM[p.VM] = map[string]*testbed.Pod{}
		}
		onVM[p.VM][p.IP] = p
	}
	for _, vm := range vms {
		inStatus := map[string]bool{}
		for _, ip := range v.inStatus[vm] {
			inStatus[ip] = true
			if !nicIPs[strings.ToLower(vm.VMID)][ip] {
				f.phantom = append(f.phantom, fmt.Sprintf("%s: status lists %s, the NIC does not hold it", vm.Name, ip))
			}
		}
		for ip := range nicIPs[strings.ToLower(vm.VMID)] {
			if onVM[vm][ip] == nil && !inStatus[ip] {
				f.unaccounted = append(f.unaccounted, fmt.Sprintf("%s: %s", vm.Name, ip))
			}
		}
		for ip, p := range onVM[vm] {
			if !inStatus[ip] {
				f.phantom = append(f.phantom, fmt.Sprintf("%s: pod %s holds %s, status does not list it", vm.Name, p.Name, ip))
			}
		}
		if err := v.heldErr[vm]; err != nil {
			// The agent may be restarting: its record is checked next time.
			f.orphaned = append(f.orphaned, fmt.Sprintf("%s: agent unreachable: %v", vm.Name, err))
			continue
		}
		for ip, id := range v.held[vm] {
			if p := onVM[vm][ip]; p == nil || p.ContainerID != id {
				f.orphaned = append(f.orphaned, fmt.Sprintf("%s: %s (container %.12s)", vm.Name, ip, id))
			}
		}
	}
	return f
}

func ipCount(p *testbed.Pod) int {
	if p.Result == nil {
		return 0
	}
	return len(p.Result.IPs)
}

// limitSampler samples ARM's view throughout the soak and remembers the
// highest VNet and NIC totals of nicpool IPs since the last take.
type limitSampler struct {
	tb            *testbed.Testbed
	vnetLimit     int
	perVMLimit    int
	mu            sync.Mutex
	maxVNet       int
	maxNIC        int
	breaches      []string
	samples       int
	stop, stopped chan struct{}
}

func startSampler(tb *testbed.Testbed, vnetLimit, perVMLimit int) *limitSampler {
	s := &limitSampler{tb: tb, vnetLimit: vnetLimit, perVMLimit: perVMLimit, stop: make(chan struct{}), stopped: make(chan struct{})}
	go s.run()
	return s
}

func (s *limitSampler) run() {
	defer close(s.stopped)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.sample(s.tb.Sim.Snapshot())
	}
}

func (s *limitSampler) sample(snap armsim.Snapshot) {
	total, most, mostNIC := 0, 0, ""
	for _, nic := range snap.NICs {
		n := 0
		for _, c := range nic.IPConfigs {
			if !c.Primary && strings.HasPrefix(c.Name, v1.IPConfigurationPrefix) {
				n++
			}
		}
		total += n
		if n > most {
			most, mostNIC = n, nic.Name
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	s.maxVNet, s.maxNIC = max(s.maxVNet, total), max(s.maxNIC, most)
	if total > s.vnetLimit {
		s.breaches = append(s.breaches, fmt.Sprintf("VNet held %d nicpool IPs, limit %d (ARM version %d)", total, s.vnetLimit, snap.Version))
	}
	if most > s.perVMLimit {
		s.breaches = append(s.breaches, fmt.Sprintf("%s held %d nicpool IPs, per-VM limit %d", mostNIC, most, s.perVMLimit))
	}
}

// take returns the peaks and breaches since the last take and resets them.
func (s *limitSampler) take() (maxVNet, maxNIC, samples int, breaches []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maxVNet, maxNIC, samples, breaches = s.maxVNet, s.maxNIC, s.samples, s.breaches
	s.maxVNet, s.maxNIC, s.samples, s.breaches = 0, 0, 0, nil
	return
}

func (s *limitSampler) close() {
	close(s.stop)
	<-s.stopped
}
