package nicsync

import "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

// SubnetCIDR returns the subnet's (first) address prefix, or "".
func SubnetCIDR(s *armnetwork.Subnet) string {
	if s == nil || s.Properties == nil {
		return ""
	}
	if p := s.Properties.AddressPrefix; p != nil && *p != "" {
		return *p
	}
	for _, p := range s.Properties.AddressPrefixes {
		if p != nil {
			return *p
		}
	}
	return ""
}

// AddressSpace returns the VNet's address prefixes.
func AddressSpace(v *armnetwork.VirtualNetwork) []string {
	if v == nil || v.Properties == nil || v.Properties.AddressSpace == nil {
		return nil
	}
	var out []string
	for _, p := range v.Properties.AddressSpace.AddressPrefixes {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}
