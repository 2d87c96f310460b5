package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
)

// armReads counts the NIC reads (GETs, polls, lists) and writes armsim served.
type armReads struct{ gets, polls, lists, puts int }

func countARM(s *sim) armReads {
	c := s.srv.Stats().Calls
	return armReads{gets: sumCalls(c[armsim.OpGetNIC]), polls: sumCalls(c[armsim.OpPollOperation]),
		lists: sumCalls(c[armsim.OpListNICs]), puts: sumCalls(c[armsim.OpPutNIC])}
}

func (a armReads) minus(b armReads) armReads {
	return armReads{gets: a.gets - b.gets, polls: a.polls - b.polls, lists: a.lists - b.lists, puts: a.puts - b.puts}
}

// TestPassReadsOnlyWhatItDoesNotKnow: a pass starts from the NIC as the last
// pass left it, and a write's LRO result is the NIC's new state: a step costs
// one write and the LRO's final GET, no pass-start GET; a pass with nothing to
// write reads nothing. A NIC changed behind the operator's back still refuses
// the write (If-Match), and the pass re-reads it and keeps the change.
func TestPassReadsOnlyWhatItDoesNotKnow(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.42.0.0/16", "10.42.0.0/24", 1))
	// What a pass knows is trusted for an hour here, so a slow machine does not
	// turn a pass-start read back on.
	startOperator(t, s, testOptions(), func(r *PoolReconciler) { r.knownTTL = time.Hour })
	createNode(t, "reads-0", providerID(0))
	eventually(t, 30*time.Second, func() string {
		if lookPool("reads-0").Status.VNetID == "" {
			return "pool reads-0 has no NIC identity yet"
		}
		return ""
	})

	step := func(n int, want armReads, what string) {
		t.Helper()
		before := countARM(s)
		setRequest(t, "reads-0", n, nil)
		eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool("reads-0"), nicID(0), n) })
		got := countARM(s).minus(before)
		got.polls = 0 // as many as the LRO takes
		if got != want {
			t.Errorf("%s: ARM calls %+v, want %+v", what, got, want)
		}
	}
	step(8, armReads{gets: 1, puts: 1}, "0 -> 8")
	step(12, armReads{gets: 1, puts: 1}, "8 -> 12")

	// Someone else adds a configuration: the operator's next write is refused
	// with 412, it re-reads, writes again and keeps the foreign configuration.
	nic, err := s.nics.GetNIC(context.Background(), nicID(0))
	if err != nil {
		t.Fatalf("get nic: %v", err)
	}
	subnet := nic.Properties.IPConfigurations[0].Properties.Subnet
	nic.Properties.IPConfigurations = append(nic.Properties.IPConfigurations, &armnetwork.InterfaceIPConfiguration{
		Name: to.Ptr("someone-else"),
		Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
			PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic), Subnet: subnet,
		},
	})
	if _, err := s.nics.UpdateNIC(context.Background(), nic); err != nil {
		t.Fatalf("foreign update: %v", err)
	}
	step(16, armReads{gets: 2, puts: 2}, "12 -> 16 after a foreign write (412, re-read)")
	if _, foreign := nicOwned(s, nicID(0)); foreign["someone-else"] == "" {
		t.Fatalf("the foreign configuration is gone: %v", foreign)
	}

	// A pass with nothing to write (a label change triggers one) reads nothing.
	before := countARM(s)
	passes := reconciles(t)
	pool := getPool(t, "reads-0")
	pool.Labels = map[string]string{"touched": "yes"}
	if err := env.Client.Update(context.Background(), pool); err != nil {
		t.Fatalf("label pool: %v", err)
	}
	eventually(t, 30*time.Second, func() string {
		if n := reconciles(t); n == passes {
			return "no pass after the label change yet"
		}
		return ""
	})
	if got := countARM(s).minus(before); got != (armReads{}) {
		t.Errorf("a pass with nothing to write made ARM calls %+v, want none", got)
	}
}

// reconciles counts the pool passes the operators in this process have run.
func reconciles(t *testing.T) int {
	n := 0.0
	for _, v := range gather(t, "nicpool_reconcile_duration_seconds") {
		n += v
	}
	return int(n)
}
