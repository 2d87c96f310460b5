package azure

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// FindNICForVM lists the NICs in the VM's resource group and returns the ID of the one whose
// properties.virtualMachine.id is the VM (case-insensitive). With several, the primary NIC
// wins, else the first by name. No match gives a KindNotFound error.
func (c *NICClient) FindNICForVM(ctx context.Context, vmID string) (string, error) {
	vm, err := ParseVMID(vmID)
	if err != nil {
		return "", fmt.Errorf("find nic for vm: %w", err)
	}
	cl, err := c.interfaces(vm.SubscriptionID)
	if err != nil {
		return "", err
	}
	var matches []*armnetwork.Interface
	pager := cl.NewListPager(vm.ResourceGroup, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("find nic for vm %s: list nics in resource group %s: %w", vmID, vm.ResourceGroup, err)
		}
		for _, nic := range page.Value {
			if nic != nil && nic.ID != nil && nic.Properties != nil && nic.Properties.VirtualMachine != nil &&
				nic.Properties.VirtualMachine.ID != nil && SameID(*nic.Properties.VirtualMachine.ID, vmID) {
				matches = append(matches, nic)
			}
		}
	}
	best := pickNIC(matches)
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

// GetSubnet reads a subnet (address prefixes, delegations, ...).
func (c *NICClient) GetSubnet(ctx context.Context, subnetID string) (*armnetwork.Subnet, error) {
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
	return &resp.Subnet, nil
}

// GetVNet reads a virtual network (address space, subnets).
func (c *NICClient) GetVNet(ctx context.Context, vnetID string) (*armnetwork.VirtualNetwork, error) {
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
	return &resp.VirtualNetwork, nil
}
