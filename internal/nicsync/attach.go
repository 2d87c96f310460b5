package nicsync

import (
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/attach"
)

// Attachment is what one IP configuration carries besides its address:
// application security groups, load balancer backend pools and a public IP,
// by ARM ID (pod attachments, docs/pod-attachments.md).
type Attachment struct {
	ASGs     []string
	Pools    []string
	PublicIP string
}

// Empty reports whether a carries nothing.
func (a Attachment) Empty() bool {
	return len(a.ASGs) == 0 && len(a.Pools) == 0 && a.PublicIP == ""
}

// Same reports whether a and b carry the same resources (IDs compared as ARM
// compares them: case-insensitively, lists as sets).
func (a Attachment) Same(b Attachment) bool {
	return attach.SameIDs(a.ASGs, b.ASGs) && attach.SameIDs(a.Pools, b.Pools) &&
		strings.EqualFold(strings.Trim(a.PublicIP, "/"), strings.Trim(b.PublicIP, "/"))
}

// IDs lists every resource a refers to.
func (a Attachment) IDs() []string {
	out := slices.Concat(a.ASGs, a.Pools)
	if a.PublicIP != "" {
		out = append(out, a.PublicIP)
	}
	return out
}

// ConfigAttachment reads what an IP configuration carries.
func ConfigAttachment(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) Attachment {
	var a Attachment
	if p == nil {
		return a
	}
	for _, g := range p.ApplicationSecurityGroups {
		if g != nil && Deref(g.ID) != "" {
			a.ASGs = append(a.ASGs, *g.ID)
		}
	}
	for _, b := range p.LoadBalancerBackendAddressPools {
		if b != nil && Deref(b.ID) != "" {
			a.Pools = append(a.Pools, *b.ID)
		}
	}
	if p.PublicIPAddress != nil {
		a.PublicIP = Deref(p.PublicIPAddress.ID)
	}
	return a
}

// WithAttachment returns a copy of c carrying a (c itself is not changed:
// Write restores the NIC's list after a refused write).
func WithAttachment(c *armnetwork.InterfaceIPConfiguration, a Attachment) *armnetwork.InterfaceIPConfiguration {
	cp := *c
	var props armnetwork.InterfaceIPConfigurationPropertiesFormat
	if c.Properties != nil {
		props = *c.Properties
	}
	props.ApplicationSecurityGroups = make([]*armnetwork.ApplicationSecurityGroup, 0, len(a.ASGs))
	for _, id := range a.ASGs {
		props.ApplicationSecurityGroups = append(props.ApplicationSecurityGroups, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(id)})
	}
	props.LoadBalancerBackendAddressPools = make([]*armnetwork.BackendAddressPool, 0, len(a.Pools))
	for _, id := range a.Pools {
		props.LoadBalancerBackendAddressPools = append(props.LoadBalancerBackendAddressPools, &armnetwork.BackendAddressPool{ID: to.Ptr(id)})
	}
	props.PublicIPAddress = nil
	if a.PublicIP != "" {
		props.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(a.PublicIP)}
	}
	cp.Properties = &props
	return &cp
}

// NICASGs returns the application security groups of the NIC's primary
// configuration: Azure requires every IP configuration of a NIC in the same
// ASGs, so new configurations carry these.
func NICASGs(nic *armnetwork.Interface) []string {
	p := PrimaryConfig(nic)
	if p == nil {
		return nil
	}
	return ConfigAttachment(p.Properties).ASGs
}

// PrimaryASGs returns the ASGs of the primary among configs.
func PrimaryASGs(configs []Config) []string {
	for _, c := range configs {
		if c.Primary {
			return c.Att.ASGs
		}
	}
	return nil
}
