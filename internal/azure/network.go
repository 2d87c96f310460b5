package azure

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// FindNICForVM returns the ID of the NIC whose properties.virtualMachine.id is the VM
// (case-insensitive), from one paged list of the NICs in the VM's resource group that
// concurrent and later calls share (see nicIndex). With several, the primary NIC wins,
// else the first by name. No match gives a KindNotFound error.
func (c *NICClient) FindNICForVM(ctx context.Context, vmID string) (string, error) {
	vm, err := ParseVMID(vmID)
	if err != nil {
		return "", fmt.Errorf("find nic for vm: %w", err)
	}
	cl, err := c.interfaces(vm.SubscriptionID)
	if err != nil {
		return "", err
	}
	list := func(ctx context.Context) ([]*armnetwork.Interface, error) {
		var all []*armnetwork.Interface
		pager := cl.NewListPager(vm.ResourceGroup, nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list nics in resource group %s: %w", vm.ResourceGroup, err)
			}
			all = append(all, page.Value...)
		}
		return all, nil
	}
	matches, err := c.index.find(ctx, strings.ToLower(vm.SubscriptionID+"/"+vm.ResourceGroup), vmID, list)
	if err != nil {
		return "", fmt.Errorf("find nic for vm %s: %w", vmID, err)
	}
	best := pickNIC(slices.Clone(matches))
	if best == nil {
		return "", fmt.Errorf("find nic for vm %s: no nic in resource group %s is attached to it: %w",
			vmID, vm.ResourceGroup, ErrNotFound)
	}
	return *best.ID, nil
}

// pickNIC chooses the primary NIC, else the first by name; nil for none.
func pickNIC(nics []*armnetwork.Interface) *armnetwork.Interface {
	if len(nics) == 0 {
		return nil
	}
	name := func(n *armnetwork.Interface) string {
		if n.Name != nil {
			return strings.ToLower(*n.Name)
		}
		return strings.ToLower(*n.ID)
	}
	sort.SliceStable(nics, func(i, j int) bool { return name(nics[i]) < name(nics[j]) })
	for _, n := range nics {
		if n.Properties.Primary != nil && *n.Properties.Primary {
			return n
		}
	}
	return nics[0]
}

// GetSubnet reads a subnet (address prefixes, delegations, ...). A read less than
// readCacheTTL old answers instead; the result must not be modified.
func (c *NICClient) GetSubnet(ctx context.Context, subnetID string) (*armnetwork.Subnet, error) {
	if s, ok := c.subnetReads.get(subnetID, time.Now()); ok {
		return s, nil
	}
	id, err := ParseSubnetID(subnetID)
	if err != nil {
		return nil, err
	}
	f, err := c.factory(id.SubscriptionID)
	if err != nil {
		return nil, err
	}
	resp, err := f.NewSubnetsClient().Get(ctx, id.ResourceGroup, id.Parent.Name, id.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("get subnet %s: %w", subnetID, err)
	}
	c.subnetReads.put(subnetID, &resp.Subnet, time.Now())
	return &resp.Subnet, nil
}

// GetVNet reads a virtual network (address space, subnets). A read less than
// readCacheTTL old answers instead; the result must not be modified.
func (c *NICClient) GetVNet(ctx context.Context, vnetID string) (*armnetwork.VirtualNetwork, error) {
	if v, ok := c.vnetReads.get(vnetID, time.Now()); ok {
		return v, nil
	}
	id, err := ParseVNetID(vnetID)
	if err != nil {
		return nil, err
	}
	f, err := c.factory(id.SubscriptionID)
	if err != nil {
		return nil, err
	}
	resp, err := f.NewVirtualNetworksClient().Get(ctx, id.ResourceGroup, id.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("get vnet %s: %w", vnetID, err)
	}
	c.vnetReads.put(vnetID, &resp.VirtualNetwork, time.Now())
	return &resp.VirtualNetwork, nil
}
