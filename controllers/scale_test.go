package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
)

// TestScaleUpAndDown scales one node 0 -> 250 -> 10 as the agent would, with
// a foreign IP configuration on the NIC that must survive every pass, then
// deletes the node and checks everything is released.
func TestScaleUpAndDown(t *testing.T) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.1.0.0/16", "10.1.0.0/22", 1)
	topo.NICs[0].ExtraIPConfigs = []string{"foreign-lb"}
	s := startSim(t, topo)
	op := startOperator(t, s, testOptions(), nil)
	_, foreignBefore := nicOwned(s, nicID(0))
	createNode(t, "scale-0", providerID(0))

	eventually(t, 30*time.Second, func() string {
		p := lookPool("scale-0")
		if p.Status.VNetID == "" || p.Status.SubnetCIDR != "10.1.0.0/22" || p.Status.PrimaryIP == "" {
			return fmt.Sprintf("identity not recorded: %+v", p.Status)
		}
		if st, _ := condition(p, nicpoolv1.ConditionReady); st != metav1.ConditionTrue {
			return "not ready"
		}
		return ""
	})
	putsBefore := s.srv.Stats().PutsByNIC[nicID(0)]
	setRequest(t, "scale-0", 250, nil)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("scale-0"), nicID(0), 250) })
	if puts := s.srv.Stats().PutsByNIC[nicID(0)] - putsBefore; puts > 2 {
		t.Errorf("scale 0 -> 250 took %d NIC writes, want 1 (2 if a change raced a write)", puts)
	}

	// The agent releases 240 idle IPs and asks for 10.
	pool := getPool(t, "scale-0")
	release := make([]nicpoolv1.IPv4Address, 0, len(pool.Status.IPs)-10)
	for _, p := range pool.Status.IPs[10:] {
		release = append(release, p.IP)
	}
	keep := pool.Status.IPs[:10]
	setRequest(t, "scale-0", 10, release)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("scale-0"), nicID(0), 10) })
	for i, p := range getPool(t, "scale-0").Status.IPs {
		if p != keep[i] {
			t.Errorf("kept IP %d = %+v, want %+v (an IP in use was touched)", i, p, keep[i])
		}
	}
	setRequest(t, "scale-0", 10, nil)
	if _, foreign := nicOwned(s, nicID(0)); fmt.Sprint(foreign) != fmt.Sprint(foreignBefore) || len(foreign) != 1 {
		t.Errorf("foreign configurations = %v, want %v untouched", foreign, foreignBefore)
	}
	if st, reason := condition(getPool(t, "scale-0"), nicpoolv1.ConditionLimitReached); st != metav1.ConditionFalse {
		t.Errorf("LimitReached = %s/%s, want False", st, reason)
	}

	// Node deletion (and the pool's, as the garbage collector would) releases everything.
	deleteNodeAndPool(t, "scale-0", false)
	eventually(t, 30*time.Second, func() string {
		if err := env.Client.Get(context.Background(), clientKey("scale-0"), &nicpoolv1.NodeIPPool{}); err == nil {
			return "pool still exists"
		}
		if owned, _ := nicOwned(s, nicID(0)); len(owned) != 0 {
			return fmt.Sprintf("%d nicpool configurations left on the NIC", len(owned))
		}
		return ""
	})
	if _, foreign := nicOwned(s, nicID(0)); len(foreign) != 1 {
		t.Errorf("foreign configuration removed on release: %v", foreign)
	}
	if used, held := op.ledger.Used(getVNetID(s)); used != 0 || held != 0 {
		t.Errorf("ledger after release: used %d held %d, want 0", used, held)
	}
}

// TestPerVMLimit caps a request above a lowered per-VM limit.
func TestPerVMLimit(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.2.0.0/16", "10.2.0.0/24", 1))
	opts := testOptions()
	opts.PerVMLimit = 40
	startOperator(t, s, opts, nil)
	createNode(t, "pervm-0", providerID(0))
	setRequestWhenExists(t, "pervm-0", 50)
	waitLimitReached(t, s, "pervm-0", 40, nicpoolv1.ReasonPerVMLimit)
}

// waitLimitReached waits until the pool of NIC 0 holds want IPs, as its NIC
// does, and says LimitReached for reason.
func waitLimitReached(t *testing.T, s *sim, name string, want int, reason string) {
	t.Helper()
	eventually(t, 60*time.Second, func() string {
		p := lookPool(name)
		if msg := statusMatchesNIC(s, p, nicID(0), want); msg != "" {
			return msg
		}
		if st, got := condition(p, nicpoolv1.ConditionLimitReached); st != metav1.ConditionTrue || got != reason {
			return fmt.Sprintf("LimitReached = %s/%s, want True/%s", st, got, reason)
		}
		return ""
	})
}

// TestUnsupportedNodes gives nodes without a providerID or on a VM scale set
// a pool with a clear condition, and never writes to ARM.
func TestUnsupportedNodes(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.3.0.0/16", "10.3.0.0/24", 1))
	startOperator(t, s, testOptions(), nil)
	createNode(t, "noprovider", "")
	createNode(t, "vmss", fmt.Sprintf("azure:///subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0", testSub, testRG))
	setRequestWhenExists(t, "noprovider", 5)
	setRequestWhenExists(t, "vmss", 5)
	for name, want := range map[string]string{"noprovider": ReasonNoProviderID, "vmss": ReasonUnsupportedProvider} {
		eventually(t, 30*time.Second, func() string {
			st, reason := condition(lookPool(name), nicpoolv1.ConditionReady)
			if st != metav1.ConditionFalse || reason != want {
				return fmt.Sprintf("pool %s Ready = %s/%s, want False/%s", name, st, reason, want)
			}
			return ""
		})
	}
	if puts := s.srv.Stats().Calls[armsim.OpPutNIC]; len(puts) != 0 {
		t.Errorf("ARM writes for unsupported nodes: %v", puts)
	}
}

// setRequestWhenExists waits for the node controller to create the pool and
// sets its request.
func setRequestWhenExists(t *testing.T, name string, n int) {
	t.Helper()
	eventually(t, 30*time.Second, func() string {
		if err := env.Client.Get(context.Background(), clientKey(name), &nicpoolv1.NodeIPPool{}); err != nil {
			return err.Error()
		}
		return ""
	})
	setRequest(t, name, n, nil)
}

func getVNetID(s *sim) string {
	return s.srv.Snapshot().NICs[0].VNetID
}

// TestSubnetFull fills a small subnet: the pool gets every free address and
// says SubnetFull.
func TestSubnetFull(t *testing.T) {
	// A /27 has 27 usable addresses; the NIC's primary holds one.
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.6.0.0/16", "10.6.0.0/27", 1))
	startOperator(t, s, testOptions(), nil)
	createNode(t, "full-0", providerID(0))
	setRequestWhenExists(t, "full-0", 40)
	waitLimitReached(t, s, "full-0", 26, nicpoolv1.ReasonSubnetFull)
}

// TestOutOfScope refuses to write to a NIC outside --resource-group, with a
// condition that says so.
func TestOutOfScope(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.4.0.0/16", "10.4.0.0/24", 1))
	opts := testOptions()
	opts.Scope = Scope{SubscriptionID: testSub, ResourceGroup: "rg-of-another-cluster"}
	startOperator(t, s, opts, nil)
	createNode(t, "vm-0", fmt.Sprintf("azure:///subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/vm-0", testSub, testRG))
	setRequestWhenExists(t, "vm-0", 5)
	eventually(t, 30*time.Second, func() string {
		st, reason := condition(lookPool("vm-0"), nicpoolv1.ConditionReady)
		if st != metav1.ConditionFalse || reason != ReasonOutOfScope {
			return fmt.Sprintf("pool vm-0 Ready = %s/%s, want False/%s", st, reason, ReasonOutOfScope)
		}
		return ""
	})
	if puts := s.srv.Stats().Calls[armsim.OpPutNIC]; len(puts) != 0 {
		t.Errorf("ARM writes outside the scope: %v", puts)
	}
}
