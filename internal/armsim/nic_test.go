package armsim_test

import (
	"net/netip"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestNICRoundTrip(t *testing.T) {
	e := startEnv(t, armsim.Options{})
	ctx := ctxT(t)
	got, err := e.nics.Get(ctx, testRG, "vm-1-nic", nil)
	if err != nil {
		t.Fatalf("get nic: %v", err)
	}
	if ip := *got.Properties.IPConfigurations[0].Properties.PrivateIPAddress; ip != "10.240.0.5" {
		t.Errorf("vm-1 primary ip = %s, want 10.240.0.5 (first four reserved, vm-0 has .4)", ip)
	}
	wantVM := "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Compute/virtualMachines/vm-1"
	if *got.Properties.VirtualMachine.ID != wantVM {
		t.Errorf("vm id = %s, want %s", *got.Properties.VirtualMachine.ID, wantVM)
	}
	oldEtag := *got.Etag
	nic := got.Interface
	addSecondaries(&nic, "pod", 3)
	nic.Properties.VirtualMachine = &armnetwork.SubResource{ID: to.Ptr("/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/thief")}
	poller, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-1-nic", nic, nil)
	if err != nil {
		t.Fatalf("begin put: %v", err)
	}
	res, err := poller.PollUntilDone(ctx, fastPoll)
	if err != nil {
		t.Fatalf("poll put: %v", err)
	}
	if *res.Properties.ProvisioningState != armnetwork.ProvisioningStateSucceeded {
		t.Errorf("provisioning state = %s, want Succeeded", *res.Properties.ProvisioningState)
	}
	if *res.Etag == oldEtag {
		t.Errorf("etag did not change on update")
	}
	seen := map[string]bool{}
	for _, c := range res.Properties.IPConfigurations {
		ip := *c.Properties.PrivateIPAddress
		if seen[ip] {
			t.Errorf("duplicate ip %s", ip)
		}
		seen[ip] = true
		if !netip.MustParsePrefix("10.240.0.0/24").Contains(netip.MustParseAddr(ip)) {
			t.Errorf("ip %s outside subnet", ip)
		}
	}
	if len(res.Properties.IPConfigurations) != 4 || *res.Properties.VirtualMachine.ID != wantVM {
		t.Errorf("got %d configs and vm %v, want 4 and %s", len(res.Properties.IPConfigurations), *res.Properties.VirtualMachine.ID, wantVM)
	}
	pager := e.nics.NewListPager(testRG, nil)
	count := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		count += len(page.Value)
	}
	if count != 3 {
		t.Errorf("listed %d nics, want 3", count)
	}
}
