package armsim

import (
	"net/netip"
	"sort"
	"strings"
)

// NetworkState is what the simulated fabric enforces beyond routing each IP
// configuration to its VM: subnets with their NSG and route table, NSGs (user rules and
// Azure's defaults, sorted by direction and priority), route tables, load balancers and
// public IPs. Resource IDs are lower-case so they compare directly.
type NetworkState struct {
	// VNets holds every VNet's address space and connected prefixes (the VirtualNetwork tag).
	VNets []VNetState
	// Subnets holds every subnet with its associations.
	Subnets []SubnetState
	// NSGs maps lower-case NSG IDs to their rules, defaults included.
	NSGs map[string][]SecurityRule
	// RouteTables maps lower-case route table IDs to their routes.
	RouteTables map[string][]UserRoute
	// LoadBalancers lists every load balancer.
	LoadBalancers []LBState
	// PublicIPs lists every public IP address with the IP configuration holding it.
	PublicIPs []PublicIPState
}

// VNetState is one VNet in a NetworkState.
type VNetState struct {
	ID                      string
	AddressSpace, Connected []netip.Prefix
}

// SubnetState is one subnet in a NetworkState.
type SubnetState struct {
	ID, VNetID          string
	Prefix              netip.Prefix
	NSGID, RouteTableID string
	// ServiceEndpoints are the services with a service endpoint on the subnet, in
	// Azure's spelling (ServiceStorage), sorted.
	ServiceEndpoints []string
}

// LBState is a load balancer in a NetworkState: frontends with their address, pools
// with their members' private addresses, probes and rules.
type LBState struct {
	ID        string
	Frontends []LBFrontendState
	Pools     map[string][]netip.Addr // pool name (lower-case) -> member private IPs, sorted
	Probes    []LBProbe
	Rules     []LBRule
}

// LBFrontendState is a frontend: PrivateIP for internal ones, PublicIP for public ones.
type LBFrontendState struct {
	Name                string
	PrivateIP, PublicIP netip.Addr
}

// PublicIPState is a public IP address and the private address it maps to (invalid when
// unassociated or associated with a load balancer frontend, then LBFrontendID is set).
type PublicIPState struct {
	ID           string
	IP           netip.Addr
	PrivateIP    netip.Addr
	LBFrontendID string
}

// snapshotNetworkLocked builds a NetworkState. Requires s.mu.
func (s *Server) snapshotNetworkLocked() NetworkState {
	st := NetworkState{NSGs: map[string][]SecurityRule{}, RouteTables: map[string][]UserRoute{}}
	for _, v := range s.vnets {
		st.VNets = append(st.VNets, VNetState{ID: lower(v.id), AddressSpace: v.space, Connected: v.connected})
		for _, sn := range v.subnets {
			st.Subnets = append(st.Subnets, SubnetState{ID: lower(sn.id), VNetID: lower(v.id), Prefix: sn.prefix, NSGID: lower(sn.nsg), RouteTableID: lower(sn.routeTable),
				ServiceEndpoints: endpointServiceNames(sn.endpoints)})
		}
	}
	sort.Slice(st.VNets, func(i, j int) bool { return st.VNets[i].ID < st.VNets[j].ID })
	sort.Slice(st.Subnets, func(i, j int) bool { return st.Subnets[i].ID < st.Subnets[j].ID })
	for _, r := range s.netres[lower(typeNSG)] {
		g := r.(*nsg)
		rules := append(append([]SecurityRule{}, g.rules...), defaultSecurityRules...)
		for i := range rules {
			rules[i].SourceASGs, rules[i].DestinationASGs = sortedLower(rules[i].SourceASGs), sortedLower(rules[i].DestinationASGs)
		}
		sort.SliceStable(rules, func(i, j int) bool {
			if rules[i].Direction != rules[j].Direction {
				return rules[i].Direction < rules[j].Direction
			}
			return rules[i].Priority < rules[j].Priority
		})
		st.NSGs[lower(g.id)] = rules
	}
	for _, r := range s.netres[lower(typeRouteTable)] {
		t := r.(*routeTable)
		st.RouteTables[lower(t.id)] = append([]UserRoute{}, t.routes...)
	}
	private := s.privateByConfigLocked()
	for _, r := range s.netres[lower(typePublicIP)] {
		p := r.(*publicIP)
		ps := PublicIPState{ID: lower(p.id), IP: p.addr}
		if strings.Contains(lower(p.owner), "/loadbalancers/") {
			ps.LBFrontendID = lower(p.owner)
		} else if p.owner != "" {
			ps.PrivateIP = private[lower(p.owner)]
		}
		st.PublicIPs = append(st.PublicIPs, ps)
	}
	sort.Slice(st.PublicIPs, func(i, j int) bool { return st.PublicIPs[i].ID < st.PublicIPs[j].ID })
	st.LoadBalancers = s.snapshotLBsLocked()
	return st
}

// privateByConfigLocked maps lower-case IP configuration IDs that hold a public IP to
// their private address.
func (s *Server) privateByConfigLocked() map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for _, n := range s.nics {
		for _, c := range n.configs {
			if c.pip != "" {
				out[lower(n.configID(c.name))] = c.addr
			}
		}
	}
	return out
}

func (s *Server) snapshotLBsLocked() []LBState {
	lbs := s.netres[lower(typeLB)]
	if len(lbs) == 0 {
		return nil
	}
	members := map[string][]netip.Addr{} // lower pool ID -> private IPs
	for _, n := range s.nics {
		for _, c := range n.configs {
			for _, p := range c.pools {
				members[lower(p)] = append(members[lower(p)], c.addr)
			}
		}
	}
	var out []LBState
	for _, r := range lbs {
		l := r.(*loadBalancer)
		ls := LBState{ID: lower(l.id), Pools: map[string][]netip.Addr{}, Probes: append([]LBProbe{}, l.probes...), Rules: append([]LBRule{}, l.rules...)}
		for _, f := range l.frontends {
			fs := LBFrontendState{Name: f.name, PrivateIP: f.addr}
			if f.pip != "" {
				if p := s.publicIPLocked(f.pip); p != nil {
					fs.PublicIP = p.addr
				}
			}
			ls.Frontends = append(ls.Frontends, fs)
		}
		for _, p := range l.pools {
			m := members[lower(l.poolID(p))]
			sort.Slice(m, func(i, j int) bool { return m[i].Less(m[j]) })
			ls.Pools[lower(p)] = m
		}
		out = append(out, ls)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) publicIPLocked(id string) *publicIP {
	r, ok := s.parseRef(id)
	if !ok {
		return nil
	}
	p, _ := s.resourceLocked(typePublicIP, r.rg, r.name).(*publicIP)
	return p
}
