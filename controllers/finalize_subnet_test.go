package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// oneNIC serves one NIC from memory: just what releaseAll reads and writes.
type oneNIC struct {
	nic   *armnetwork.Interface
	wrote int
}

func (f *oneNIC) GetNIC(context.Context, string) (*armnetwork.Interface, error) { return f.nic, nil }
func (f *oneNIC) UpdateNIC(_ context.Context, nic *armnetwork.Interface) (*armnetwork.Interface, error) {
	f.nic, f.wrote = nic, f.wrote+1
	return nic, nil
}
func (f *oneNIC) FindNICForVM(context.Context, string) (string, error) {
	return "", errors.New("not served")
}
func (f *oneNIC) GetSubnet(context.Context, string) (*armnetwork.Subnet, error) {
	return nil, errors.New("not served")
}
func (f *oneNIC) GetVNet(context.Context, string) (*armnetwork.VirtualNetwork, error) {
	return nil, errors.New("not served")
}

// TestReleaseAllGivesRoomBackToTheSubnet: a deleted pool's addresses go back
// to the subnet's remembered room at once, so a pool held back by a full
// subnet takes them on its next pass instead of after the probe interval.
func TestReleaseAllGivesRoomBackToTheSubnet(t *testing.T) {
	const subnet = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a"
	configs := []*armnetwork.InterfaceIPConfiguration{{Name: to.Ptr("ipconfig1"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{Primary: to.Ptr(true), PrivateIPAddress: to.Ptr("10.0.0.4")}}}
	for _, n := range []string{"nicpool-a", "nicpool-b", "nicpool-c"} {
		configs = append(configs, &armnetwork.InterfaceIPConfiguration{Name: to.Ptr(n), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{PrivateIPAddress: to.Ptr("10.0.0.9")}})
	}
	nics := &oneNIC{nic: &armnetwork.Interface{Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: configs}}}
	r := &PoolReconciler{NICs: nics}
	now := time.Now()
	r.subnets.refused(subnet, 1, now) // the subnet is full: no room
	if got := r.subnets.maxAdds(subnet, now, time.Minute); got != 0 {
		t.Fatalf("room before the release = %d, want 0", got)
	}
	pool := &nicpoolv1.NodeIPPool{}
	pool.Name = "gone"
	pool.Status.SubnetID = subnet
	if res, err := r.releaseAll(context.Background(), pool, "nic"); err != nil || !res.IsZero() {
		t.Fatalf("releaseAll = %v, %v", res, err)
	}
	if nics.wrote != 1 || len(nics.nic.Properties.IPConfigurations) != 1 {
		t.Fatalf("after releaseAll: %d writes, %d configurations left, want 1 write leaving the primary", nics.wrote, len(nics.nic.Properties.IPConfigurations))
	}
	if got := r.subnets.maxAdds(subnet, now, time.Minute); got != 3 {
		t.Errorf("room after releasing 3 addresses = %d, want 3", got)
	}
}
