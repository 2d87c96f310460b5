package azure

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
)

// TestOperationEndsFailed: a PUT whose operation ends Failed is KindOperationFailed, the
// NIC then reads as ProvisioningFailed with the write's configurations listed, and
// re-applying the NIC as read repairs it.
func TestOperationEndsFailed(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 10 * time.Millisecond}, nil)
	nic := getNIC(t, c, simNICID(0))
	if p := NICProvisioning(nic); p != ProvisioningSucceeded {
		t.Fatalf("fresh nic reads %s, want Succeeded", p)
	}
	addDynamicConfigs(t, nic, "nicpool", 2)
	srv.FailNextOperations(1, "")
	_, err := c.UpdateNIC(context.Background(), nic)
	if k := Classify(err); k != KindOperationFailed {
		t.Fatalf("update whose operation failed: %v (%s), want OperationFailed", err, k)
	}
	if c.PendingCount() != 0 {
		t.Fatalf("a finished (failed) operation is still pending")
	}
	failed := getNIC(t, c, simNICID(0))
	if p := NICProvisioning(failed); p != ProvisioningFailed || NICProvisioningState(failed) != "Failed" {
		t.Fatalf("nic after failed operation reads %s (%q), want Failed", p, NICProvisioningState(failed))
	}
	if n := len(failed.Properties.IPConfigurations); n != 3 {
		t.Fatalf("failed nic lists %d configurations, want 3 (the write's stay listed)", n)
	}
	repaired, err := c.UpdateNIC(context.Background(), failed)
	if err != nil {
		t.Fatalf("re-apply failed nic: %v", err)
	}
	if p := NICProvisioning(repaired); p != ProvisioningSucceeded || len(repaired.Properties.IPConfigurations) != 3 {
		t.Fatalf("re-applied nic reads %s with %d configurations, want Succeeded with 3", p, len(repaired.Properties.IPConfigurations))
	}
}

// TestFailedFinalGetIsNotAFailedOperation: when the operation succeeded but the poller's
// final GET of the NIC fails, the error is that GET's, not KindOperationFailed.
func TestFailedFinalGetIsNotAFailedOperation(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 10 * time.Millisecond}, nil)
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 1)
	srv.FailNext(armsim.OpGetNIC, 10, http.StatusNotFound, "")
	_, err := c.UpdateNIC(context.Background(), nic)
	if k := Classify(err); k != KindNotFound {
		t.Fatalf("update whose final get failed: %v (%s), want NotFound", err, k)
	}
	srv.FailNext(armsim.OpGetNIC, 0, 0, "")
	if p := NICProvisioning(getNIC(t, c, simNICID(0))); p != ProvisioningSucceeded {
		t.Fatalf("nic reads %s, want Succeeded", p)
	}
}

// TestFreshClientSeesUpdating: a client that did not start the PUT (an operator after a
// restart) reads the NIC with the PUT's configurations already listed, and Updating.
func TestFreshClientSeesUpdating(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 10 * time.Millisecond},
		func(cfg *Config) { cfg.LROTimeout = 100 * time.Millisecond })
	srv.HangLRO(true)
	nic := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, nic, "nicpool", 2)
	if _, err := c.UpdateNIC(context.Background(), nic); Classify(err) != KindPending {
		t.Fatalf("update with hung lro: %v, want Pending", err)
	}
	co, err := armsimtest.ClientOptions(srv)
	if err != nil {
		t.Fatalf("client options: %v", err)
	}
	fresh, err := NewNICClient(Config{ClientOptions: co, Credential: armsimtest.Credential{}})
	if err != nil {
		t.Fatalf("create second client: %v", err)
	}
	during := getNIC(t, fresh, simNICID(0))
	if p := NICProvisioning(during); p != ProvisioningInProgress || len(during.Properties.IPConfigurations) != 3 {
		t.Fatalf("nic during the write reads %s with %d configurations, want InProgress with 3", p, len(during.Properties.IPConfigurations))
	}
	srv.HangLRO(false)
	deadline := time.Now().Add(10 * time.Second)
	for NICProvisioning(getNIC(t, fresh, simNICID(0))) != ProvisioningSucceeded {
		if time.Now().After(deadline) {
			t.Fatal("nic never left Updating after the operation was released")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNICProvisioning(t *testing.T) {
	state := func(s string) *armnetwork.Interface {
		return &armnetwork.Interface{Properties: &armnetwork.InterfacePropertiesFormat{ProvisioningState: to.Ptr(armnetwork.ProvisioningState(s))}}
	}
	tests := []struct {
		name string
		nic  *armnetwork.Interface
		want Provisioning
	}{
		{name: "nil nic", nic: nil, want: ProvisioningSucceeded},
		{name: "no state", nic: &armnetwork.Interface{Properties: &armnetwork.InterfacePropertiesFormat{}}, want: ProvisioningSucceeded},
		{name: "succeeded", nic: state("Succeeded"), want: ProvisioningSucceeded},
		{name: "updating", nic: state("Updating"), want: ProvisioningInProgress},
		{name: "deleting", nic: state("Deleting"), want: ProvisioningInProgress},
		{name: "unknown state waits", nic: state("Migrating"), want: ProvisioningInProgress},
		{name: "failed", nic: state("Failed"), want: ProvisioningFailed},
		{name: "canceled", nic: state("Canceled"), want: ProvisioningFailed},
		{name: "case-insensitive", nic: state("failed"), want: ProvisioningFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NICProvisioning(tt.nic); got != tt.want {
				t.Fatalf("NICProvisioning = %s, want %s", got, tt.want)
			}
		})
	}
}
