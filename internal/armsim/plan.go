package armsim

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// configPlan is the validated, fully addressed set of IP configurations a PUT asks for.
type configPlan struct {
	configs []*ipConfig
	vnet    *vnet
}

// planConfigs validates the requested IP configurations against n (existing tells whether
// n is already stored) and assigns every address, without changing any state. Requires s.mu.
func (s *Server) planConfigs(n *nic, existing bool, specs []*armnetwork.InterfaceIPConfiguration) (*configPlan, *armError) {
	if len(specs) == 0 {
		return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Network interface %s must have at least one IP configuration.", n.id)
	}
	if len(specs) > s.opts.MaxIPConfigsPerNIC {
		return nil, errorf(http.StatusBadRequest, CodeTooManyIPConfigurations,
			"Network interface %s has %d IP configurations, which exceeds the maximum of %d IP configurations per network interface.", n.id, len(specs), s.opts.MaxIPConfigsPerNIC)
	}
	plan := &configPlan{}
	names := map[string]bool{}
	for _, spec := range specs {
		c, aerr := s.parseConfig(n, spec)
		if aerr != nil {
			return nil, aerr
		}
		if names[strings.ToLower(c.name)] {
			return nil, errorf(http.StatusBadRequest, "DuplicateResourceName", "Network interface %s has two IP configurations named %s.", n.id, c.name)
		}
		names[strings.ToLower(c.name)] = true
		if plan.vnet == nil {
			plan.vnet = c.subnet.vnet
		} else if plan.vnet != c.subnet.vnet {
			return nil, errorf(http.StatusBadRequest, "IpConfigurationsOfNicMustBeInSameVnet",
				"IP configurations of network interface %s reference subnets of different virtual networks.", n.id)
		}
		plan.configs = append(plan.configs, c)
	}
	if aerr := checkPrimary(n, existing, plan.configs); aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkAttachments(n, plan); aerr != nil {
		return nil, aerr
	}
	if aerr := assignAddresses(n, plan); aerr != nil {
		return nil, aerr
	}
	return plan, nil
}

// parseConfig turns one requested configuration into an ipConfig (address not yet assigned
// for dynamic ones).
func (s *Server) parseConfig(n *nic, spec *armnetwork.InterfaceIPConfiguration) (*ipConfig, *armError) {
	if spec == nil || spec.Name == nil || *spec.Name == "" {
		return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Every IP configuration of network interface %s needs a name.", n.id)
	}
	c := &ipConfig{name: *spec.Name, state: stateUpdating}
	pr := spec.Properties
	if pr == nil || pr.Subnet == nil || pr.Subnet.ID == nil {
		return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "IP configuration %s must reference a subnet.", n.configID(c.name))
	}
	if c.subnet = s.subnetByID(*pr.Subnet.ID); c.subnet == nil {
		return nil, errorf(http.StatusBadRequest, CodeInvalidResourceReference,
			"Resource %s referenced by resource %s was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", *pr.Subnet.ID, n.id)
	}
	if pr.PrivateIPAddressVersion != nil && *pr.PrivateIPAddressVersion != armnetwork.IPVersionIPv4 {
		return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "armsim supports only IPv4 IP configurations (%s).", n.configID(c.name))
	}
	if aerr := s.parseAttachments(n, c, pr); aerr != nil {
		return nil, aerr
	}
	c.primary = pr.Primary != nil && *pr.Primary
	c.static = pr.PrivateIPAllocationMethod != nil && strings.EqualFold(string(*pr.PrivateIPAllocationMethod), string(armnetwork.IPAllocationMethodStatic))
	if !c.static {
		return c, nil
	}
	if pr.PrivateIPAddress == nil {
		return nil, errorf(http.StatusBadRequest, "PrivateIPAddressRequired", "IP configuration %s uses Static allocation but has no privateIPAddress.", n.configID(c.name))
	}
	a, err := netip.ParseAddr(*pr.PrivateIPAddress)
	if err != nil || !a.Is4() {
		return nil, errorf(http.StatusBadRequest, "InvalidPrivateIPAddress", "Private IP address %q of %s is not a valid IPv4 address.", *pr.PrivateIPAddress, n.configID(c.name))
	}
	if !usable(c.subnet.prefix, a) {
		return nil, errorf(http.StatusBadRequest, CodePrivateIPNotInSubnet,
			"Private static IP address %s does not belong to the range of subnet prefix %s, or is one of the addresses Azure reserves in it.", a, c.subnet.prefix)
	}
	c.addr = a
	return c, nil
}

// checkPrimary requires exactly one primary configuration and, on update, the same one.
func checkPrimary(n *nic, existing bool, configs []*ipConfig) *armError {
	var primaries []*ipConfig
	for _, c := range configs {
		if c.primary {
			primaries = append(primaries, c)
		}
	}
	if len(primaries) == 0 && len(configs) == 1 {
		configs[0].primary = true
		primaries = configs
	}
	if len(primaries) == 0 && existing {
		// A client that left the flag out keeps the current primary when it is still there.
		if old := n.primaryConfig(); old != nil {
			for _, c := range configs {
				if strings.EqualFold(c.name, old.name) {
					c.primary = true
					primaries = append(primaries, c)
				}
			}
		}
	}
	if len(primaries) != 1 {
		return errorf(http.StatusBadRequest, CodePrimaryIPConfigRequired,
			"Network interface %s must have exactly one primary IP configuration; the request has %d.", n.id, len(primaries))
	}
	if old := n.primaryConfig(); existing && old != nil && !strings.EqualFold(old.name, primaries[0].name) {
		return errorf(http.StatusBadRequest, CodePrimaryIPConfigRequired,
			"The primary IP configuration %s of network interface %s cannot be removed or replaced.", old.name, n.id)
	}
	return nil
}

// assignAddresses gives every planned configuration an address: static ones are checked,
// dynamic ones keep their current address when possible and otherwise get the lowest free.
func assignAddresses(n *nic, plan *configPlan) *armError {
	release := map[netip.Addr]bool{}
	old := map[string]*ipConfig{}
	for _, c := range n.configs {
		old[strings.ToLower(c.name)] = c
		if c.subnet.vnet.used[c.addr] == n.configID(c.name) {
			release[c.addr] = true
		}
	}
	taken := map[netip.Addr]bool{}
	for _, c := range plan.configs {
		if !c.static {
			continue
		}
		if _, held := c.subnet.vnet.used[c.addr]; (held && !release[c.addr]) || taken[c.addr] {
			return errorf(http.StatusBadRequest, CodePrivateIPAddressInUse,
				"IP configuration %s is using the private IP address %s which is already allocated to another resource.", n.configID(c.name), c.addr)
		}
		taken[c.addr] = true
	}
	var need []*ipConfig
	for _, c := range plan.configs {
		if c.static {
			continue
		}
		if o := old[strings.ToLower(c.name)]; o != nil && o.subnet == c.subnet && release[o.addr] && !taken[o.addr] {
			c.addr = o.addr
			taken[c.addr] = true
			if o.state == stateSucceeded && !o.static {
				c.state = stateSucceeded
			}
			continue
		}
		need = append(need, c)
	}
	return allocateDynamic(need, release, taken)
}

// allocateDynamic assigns the lowest free addresses, failing with SubnetIsFull for the
// first subnet that cannot hold all its new configurations.
func allocateDynamic(need []*ipConfig, release, taken map[netip.Addr]bool) *armError {
	cursor := map[*subnet]netip.Addr{}
	for _, c := range need {
		a, ok := c.subnet.lowestFrom(cursor[c.subnet], release, taken)
		if !ok {
			n := 0
			for _, x := range need {
				if x.subnet == c.subnet {
					n++
				}
			}
			return errorf(http.StatusBadRequest, CodeSubnetIsFull,
				"Subnet %s with address prefix %s does not have enough capacity for %d IP addresses.", c.subnet.id, c.subnet.prefix, n)
		}
		c.addr, cursor[c.subnet] = a, a
		taken[a] = true
	}
	return nil
}
