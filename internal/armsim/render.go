package armsim

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// renderNIC converts a nic into the armnetwork model the SDK unmarshals. Requires s.mu.
func renderNIC(n *nic) armnetwork.Interface {
	props := &armnetwork.InterfacePropertiesFormat{
		ProvisioningState:           to.Ptr(armnetwork.ProvisioningState(n.state)),
		ResourceGUID:                to.Ptr(n.resourceGUID),
		MacAddress:                  to.Ptr(n.mac),
		NicType:                     to.Ptr(armnetwork.NetworkInterfaceNicTypeStandard),
		EnableAcceleratedNetworking: to.Ptr(false),
		EnableIPForwarding:          to.Ptr(false),
	}
	if n.vmID != "" {
		props.VirtualMachine = &armnetwork.SubResource{ID: to.Ptr(n.vmID)}
		props.Primary = to.Ptr(true)
	}
	if n.nsg != "" {
		props.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(n.nsg)}
	}
	props.IPConfigurations = make([]*armnetwork.InterfaceIPConfiguration, 0, len(n.configs))
	for _, c := range n.configs {
		method := armnetwork.IPAllocationMethodDynamic
		if c.static {
			method = armnetwork.IPAllocationMethodStatic
		}
		cp := &armnetwork.InterfaceIPConfigurationPropertiesFormat{
			PrivateIPAddress:          to.Ptr(c.addr.String()),
			PrivateIPAllocationMethod: to.Ptr(method),
			PrivateIPAddressVersion:   to.Ptr(armnetwork.IPVersionIPv4),
			Primary:                   to.Ptr(c.primary),
			ProvisioningState:         to.Ptr(armnetwork.ProvisioningState(c.state)),
			Subnet:                    &armnetwork.Subnet{ID: to.Ptr(c.subnet.id)},
		}
		renderAttachments(c, cp)
		props.IPConfigurations = append(props.IPConfigurations, &armnetwork.InterfaceIPConfiguration{
			ID:         to.Ptr(n.configID(c.name)),
			Name:       to.Ptr(c.name),
			Type:       to.Ptr("Microsoft.Network/networkInterfaces/ipConfigurations"),
			Etag:       to.Ptr(n.etag),
			Properties: cp,
		})
	}
	return armnetwork.Interface{
		ID:         to.Ptr(n.id),
		Name:       to.Ptr(n.name),
		Type:       to.Ptr("Microsoft.Network/networkInterfaces"),
		Location:   to.Ptr(n.location),
		Etag:       to.Ptr(n.etag),
		Tags:       n.tags,
		Properties: props,
	}
}

// renderSubnet converts a subnet into the armnetwork model.
func renderSubnet(sn *subnet) *armnetwork.Subnet {
	out := &armnetwork.Subnet{
		ID:   to.Ptr(sn.id),
		Name: to.Ptr(sn.name),
		Type: to.Ptr("Microsoft.Network/virtualNetworks/subnets"),
		Etag: to.Ptr(`W/"` + sn.id + `"`),
		Properties: &armnetwork.SubnetPropertiesFormat{
			AddressPrefix:     to.Ptr(sn.prefix.String()),
			ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded),
		},
	}
	if sn.nsg != "" {
		out.Properties.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(sn.nsg)}
	}
	if sn.routeTable != "" {
		out.Properties.RouteTable = &armnetwork.RouteTable{ID: to.Ptr(sn.routeTable)}
	}
	if len(sn.endpoints) > 0 {
		out.Properties.ServiceEndpoints = renderServiceEndpoints(sn.endpoints)
	}
	return out
}

// renderVNet converts a vnet into the armnetwork model.
func renderVNet(v *vnet, location string) armnetwork.VirtualNetwork {
	space := &armnetwork.AddressSpace{}
	for _, p := range v.space {
		space.AddressPrefixes = append(space.AddressPrefixes, to.Ptr(p.String()))
	}
	subnets := make([]*armnetwork.Subnet, 0, len(v.subnets))
	for _, sn := range v.subnets {
		subnets = append(subnets, renderSubnet(sn))
	}
	return armnetwork.VirtualNetwork{
		ID:       to.Ptr(v.id),
		Name:     to.Ptr(v.name),
		Type:     to.Ptr("Microsoft.Network/virtualNetworks"),
		Location: to.Ptr(location),
		Etag:     to.Ptr(`W/"` + v.id + `"`),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace:      space,
			Subnets:           subnets,
			ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded),
		},
	}
}
