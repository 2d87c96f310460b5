package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
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

// sumCalls adds up calls of any status.
func sumCalls(byStatus map[int]int) int {
	n := 0
	for _, c := range byStatus {
		n += c
	}
	return n
}
