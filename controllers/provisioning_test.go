package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// TestRestartDuringWriteWithholdsIPs restarts the operator while a NIC write
// is still running (the NIC reads Updating, its new configurations listed
// with addresses): the new operator, which knows nothing of the write,
// publishes none of them until the NIC reads Succeeded.
func TestRestartDuringWriteWithholdsIPs(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.10.0.0/16", "10.10.0.0/24", 1))
	first := startOperator(t, s, testOptions(), nil)
	createNode(t, "updating-0", providerID(0))
	setRequestWhenExists(t, "updating-0", 20)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("updating-0"), nicID(0), 20) })
	before := publishedSet(getPool(t, "updating-0"))

	s.srv.HangLRO(true)
	setRequest(t, "updating-0", 60, nil)
	eventually(t, 30*time.Second, func() string { return nicState(s, nicID(0), 60, "Updating") })
	// The first operator is waiting for the write; its resume token dies with it.
	first.stop()

	launchOperator(t, operatorSpec{opts: testOptions(), nics: freshNICClient(t, s)})
	readsBefore := sumCalls(s.srv.Stats().Calls[armsim.OpGetNIC])
	eventually(t, 30*time.Second, func() string {
		p := lookPool("updating-0")
		if msg := onlyPublished(p, before); msg != "" {
			t.Fatalf("while the NIC is Updating: %s", msg)
		}
		if st, reason := condition(p, nicpoolv1.ConditionReady); st != metav1.ConditionFalse || reason != ReasonPending {
			return fmt.Sprintf("Ready = %s/%s, want False/%s", st, reason, ReasonPending)
		}
		// A few polls of the NIC, every one still withholding the write's IPs.
		if reads := sumCalls(s.srv.Stats().Calls[armsim.OpGetNIC]) - readsBefore; reads < 4 {
			return fmt.Sprintf("%d NIC reads by the new operator, want 4", reads)
		}
		return ""
	})
	if got := gather(t, "nicpool_node_ips_withheld")["node=updating-0"]; got != 40 {
		t.Errorf("nicpool_node_ips_withheld{node=updating-0} = %v while the write runs, want 40", got)
	}

	s.srv.HangLRO(false)
	eventually(t, 30*time.Second, func() string {
		p := lookPool("updating-0")
		if msg := statusMatchesNIC(s, p, nicID(0), 60); msg != "" {
			return msg
		}
		if st, reason := condition(p, nicpoolv1.ConditionReady); st != metav1.ConditionTrue {
			return fmt.Sprintf("Ready = %s/%s after the write succeeded, want True", st, reason)
		}
		return ""
	})
	if puts := s.srv.Stats().PutsByNIC[nicID(0)]; puts != 2 {
		t.Errorf("%d NIC writes, want 2 (the new operator must not write over a running write)", puts)
	}
}

// TestFailedWriteWithheldAndRepaired makes every NIC write end Failed (the
// NIC left in provisioningState Failed with the write's configurations
// listed): the pool keeps only the IPs it had, says Ready=False and
// Degraded=True (NICProvisioningFailed), records an Event and counts it.
// Once ARM recovers, the operator re-applies the NIC and publishes them.
func TestFailedWriteWithheldAndRepaired(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.11.0.0/16", "10.11.0.0/24", 1))
	startOperator(t, s, testOptions(), nil)
	createNode(t, "failed-0", providerID(0))
	setRequestWhenExists(t, "failed-0", 10)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("failed-0"), nicID(0), 10) })
	before := publishedSet(getPool(t, "failed-0"))
	failuresBefore := sumSeries(gather(t, "nicpool_nic_failed_total"))
	repairsBefore := gather(t, "nicpool_nic_repairs_total")

	s.srv.FailNextOperations(1000, "")
	setRequest(t, "failed-0", 30, nil)
	eventually(t, 60*time.Second, func() string {
		if msg := nicState(s, nicID(0), 30, "Failed"); msg != "" {
			return msg
		}
		p := lookPool("failed-0")
		if msg := onlyPublished(p, before); msg != "" {
			return msg
		}
		if len(p.Status.IPs) != 10 {
			return fmt.Sprintf("status lists %d IPs, want the 10 it had", len(p.Status.IPs))
		}
		for _, typ := range []string{nicpoolv1.ConditionReady, nicpoolv1.ConditionDegraded} {
			want := metav1.ConditionFalse
			if typ == nicpoolv1.ConditionDegraded {
				want = metav1.ConditionTrue
			}
			if st, reason := condition(p, typ); st != want || reason != ReasonProvisioningFailed {
				return fmt.Sprintf("%s = %s/%s, want %s/%s", typ, st, reason, want, ReasonProvisioningFailed)
			}
		}
		return ""
	})
	// It stays so over further repair attempts, each one failing.
	failedOps := s.srv.Stats().OperationsFailed
	eventually(t, 30*time.Second, func() string {
		if n := s.srv.Stats().OperationsFailed - failedOps; n < 2 {
			return fmt.Sprintf("%d more failed operations (repairs), want 2", n)
		}
		if msg := onlyPublished(lookPool("failed-0"), before); msg != "" {
			t.Fatalf("while the NIC is Failed: %s", msg)
		}
		return ""
	})
	if got := sumSeries(gather(t, "nicpool_nic_failed_total")) - failuresBefore; got < 1 {
		t.Errorf("nicpool_nic_failed_total grew by %v, want at least 1", got)
	}
	eventually(t, 30*time.Second, func() string { return poolEvent(t, "failed-0", ReasonProvisioningFailed) })

	s.srv.FailNextOperations(0, "")
	eventually(t, 60*time.Second, func() string {
		p := lookPool("failed-0")
		if msg := statusMatchesNIC(s, p, nicID(0), 30); msg != "" {
			return msg
		}
		if msg := nicState(s, nicID(0), 30, "Succeeded"); msg != "" {
			return msg
		}
		if st, reason := condition(p, nicpoolv1.ConditionDegraded); st != metav1.ConditionFalse {
			return fmt.Sprintf("Degraded = %s/%s after the repair, want False", st, reason)
		}
		return ""
	})
	if got := gather(t, "nicpool_nic_repairs_total")["result="+repairSucceeded] - repairsBefore["result="+repairSucceeded]; got < 1 {
		t.Errorf("nicpool_nic_repairs_total{result=succeeded} grew by %v, want at least 1", got)
	}
	eventually(t, 30*time.Second, func() string { return poolEvent(t, "failed-0", "NICRepaired") })
}

// TestFailedNICFoundAfterRestartIsRepaired: a NIC left Failed while no
// operator watched (or by another client) is found on the first read,
// its new configurations withheld, and repaired.
func TestFailedNICFoundAfterRestartIsRepaired(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.12.0.0/16", "10.12.0.0/24", 1))
	op := startOperator(t, s, testOptions(), nil)
	createNode(t, "leftfailed-0", providerID(0))
	setRequestWhenExists(t, "leftfailed-0", 5)
	eventually(t, 60*time.Second, func() string { return statusMatchesNIC(s, lookPool("leftfailed-0"), nicID(0), 5) })
	op.stop()
	before := publishedSet(getPool(t, "leftfailed-0"))

	// Someone adds nicpool-named configurations in a write that ends Failed.
	nic, err := s.nics.GetNIC(context.Background(), nicID(0))
	if err != nil {
		t.Fatalf("get nic: %v", err)
	}
	nic.Properties.IPConfigurations = nicsync.Apply(nic, nicsync.Plan{Add: []string{"nicpool-strayaaaaa", "nicpool-straybbbbb"}}, *nicsync.PrimaryConfig(nic).Properties.Subnet.ID)
	s.srv.FailNextOperations(1, "")
	if _, err := s.nics.UpdateNIC(context.Background(), nic); azure.Classify(err) != azure.KindOperationFailed {
		t.Fatalf("update: %v, want an operation that ended Failed", err)
	}
	repairsBefore := gather(t, "nicpool_nic_repairs_total")["result="+repairSucceeded]
	readsBefore := gather(t, "nicpool_nic_failed_total")["found_on="+failedByRead]

	startOperator(t, s, testOptions(), nil)
	eventually(t, 60*time.Second, func() string {
		p := lookPool("leftfailed-0")
		if msg := statusMatchesNIC(s, p, nicID(0), 7); msg != "" {
			if msg2 := onlyPublished(p, before); msg2 != "" {
				t.Fatalf("before the repair: %s", msg2)
			}
			return msg
		}
		return nicState(s, nicID(0), 7, "Succeeded")
	})
	if got := gather(t, "nicpool_nic_failed_total")["found_on="+failedByRead] - readsBefore; got < 1 {
		t.Errorf("nicpool_nic_failed_total{found_on=read} grew by %v, want at least 1", got)
	}
	if got := gather(t, "nicpool_nic_repairs_total")["result="+repairSucceeded] - repairsBefore; got < 1 {
		t.Errorf("nicpool_nic_repairs_total{result=succeeded} grew by %v, want at least 1", got)
	}
}

// freshNICClient returns a NIC client for s that shares nothing with s.nics
// (no remembered writes), as a restarted operator has.
func freshNICClient(t *testing.T, s *sim) *azure.NICClient {
	t.Helper()
	co, err := armsimtest.ClientOptions(s.srv)
	if err != nil {
		t.Fatalf("client options: %v", err)
	}
	nics, err := azure.NewNICClient(azure.Config{
		ClientOptions: co, Credential: armsimtest.Credential{}, ReadQPS: 2000, ReadBurst: 2000, WriteQPS: 2000, WriteBurst: 2000,
		LROTimeout: 20 * time.Second, Observer: ObserveARMCall,
	})
	if err != nil {
		t.Fatalf("create nic client: %v", err)
	}
	return nics
}

// nicState reports "" when the NIC holds want nicpool configurations and
// reads provisioningState state.
func nicState(s *sim, id string, want int, state string) string {
	owned, _ := nicOwned(s, id)
	for _, n := range s.srv.Snapshot().NICs {
		if strings.EqualFold(n.ID, id) && (n.ProvisioningState != state || len(owned) != want) {
			return fmt.Sprintf("NIC has %d nicpool configurations and reads %s, want %d and %s", len(owned), n.ProvisioningState, want, state)
		}
	}
	return ""
}

// publishedSet returns the pool's status.ips as IP -> configuration name.
func publishedSet(p *nicpoolv1.NodeIPPool) map[string]string {
	out := map[string]string{}
	for _, ip := range p.Status.IPs {
		out[string(ip.IP)] = ip.IPConfiguration
	}
	return out
}

// onlyPublished reports "" when every IP in the pool's status was in before,
// under the same configuration.
func onlyPublished(p *nicpoolv1.NodeIPPool, before map[string]string) string {
	for _, ip := range p.Status.IPs {
		if before[string(ip.IP)] != ip.IPConfiguration {
			return fmt.Sprintf("status lists %s (%s), which the write that has not succeeded added (status has %d IPs)", ip.IP, ip.IPConfiguration, len(p.Status.IPs))
		}
	}
	return ""
}

// poolEvent reports "" when an Event with reason regards the pool.
func poolEvent(t *testing.T, pool, reason string) string {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		return fmt.Sprintf("list events: %v", err)
	}
	for _, e := range list.Items {
		if e.Regarding.Name == pool && e.Reason == reason {
			return ""
		}
	}
	return fmt.Sprintf("no %s event for pool %s among %d events", reason, pool, len(list.Items))
}

// sumCalls adds up calls of any status.
func sumCalls(byStatus map[int]int) int {
	n := 0
	for _, c := range byStatus {
		n += c
	}
	return n
}
