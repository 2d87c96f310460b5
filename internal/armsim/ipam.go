package armsim

import "net/netip"

// vnet is a virtual network with its address ledger. Guarded by Server.mu.
type vnet struct {
	id, name, rg string
	space        []netip.Prefix
	// connected are address prefixes reached through peering or a gateway: part of the
	// VirtualNetwork service tag of this VNet's NSG rules.
	connected []netip.Prefix
	subnets   []*subnet
	// used maps every allocated address to the ID of the IP configuration holding it;
	// addresses are unique across the whole VNet, as in Azure.
	used map[netip.Addr]string
}

// subnet is one subnet of a vnet. Guarded by Server.mu.
type subnet struct {
	id, name   string
	prefix     netip.Prefix
	vnet       *vnet
	nsg        string // ID of the subnet's network security group, "" for none
	routeTable string // ID of the subnet's route table, "" for none
	endpoints  []serviceEndpoint
}

// usable reports whether a is an address Azure hands out in p: inside it, and neither
// one of the first four (network, gateway, two DNS) nor the last (broadcast).
func usable(p netip.Prefix, a netip.Addr) bool {
	if !p.Contains(a) {
		return false
	}
	first := p.Masked().Addr()
	for i := 0; i < 4; i++ {
		if a == first {
			return false
		}
		first = first.Next()
	}
	return a != lastAddr(p)
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= uint32((uint64(1) << hostBits) - 1)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// lowestFrom returns the lowest usable address of s above from (or from the start when
// from is invalid) that is neither held (unless being released) nor in taken.
func (s *subnet) lowestFrom(from netip.Addr, release, taken map[netip.Addr]bool) (netip.Addr, bool) {
	last := lastAddr(s.prefix)
	a := s.prefix.Masked().Addr()
	if from.IsValid() && s.prefix.Contains(from) {
		if from == last {
			return netip.Addr{}, false
		}
		a = from.Next()
	}
	for ; ; a = a.Next() {
		if usable(s.prefix, a) && !taken[a] {
			if _, held := s.vnet.used[a]; !held || release[a] {
				return a, true
			}
		}
		if a == last {
			return netip.Addr{}, false
		}
	}
}
