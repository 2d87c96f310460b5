package armsim

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Topology is the initial state of the simulated subscription: virtual networks and VM NICs.
type Topology struct {
	// SubscriptionID is the subscription every resource lives in.
	SubscriptionID string `json:"subscriptionId"`
	// Location is the Azure region reported for every resource (default "westeurope").
	Location string `json:"location,omitempty"`
	// VNets are the virtual networks with their subnets.
	VNets []VNetSpec `json:"vnets"`
	// NICs are the VM network interfaces that exist at start.
	NICs []NICSpec `json:"nics,omitempty"`
	// PublicIPRange is where public IP addresses are allocated (default 198.51.100.0/24).
	PublicIPRange string `json:"publicIPRange,omitempty"`
	// ApplicationSecurityGroups exist at start.
	ApplicationSecurityGroups []ResourceSpec `json:"applicationSecurityGroups,omitempty"`
	// PublicIPAddresses exist at start (Standard, Static, allocated from PublicIPRange).
	PublicIPAddresses []ResourceSpec `json:"publicIPAddresses,omitempty"`
	// NetworkSecurityGroups exist at start, with Azure's default rules below theirs.
	NetworkSecurityGroups []NSGSpec `json:"networkSecurityGroups,omitempty"`
	// RouteTables exist at start.
	RouteTables []RouteTableSpec `json:"routeTables,omitempty"`
	// LoadBalancers exist at start.
	LoadBalancers []LBSpec `json:"loadBalancers,omitempty"`
}

// VNetSpec describes one virtual network.
type VNetSpec struct {
	// ResourceGroup is the resource group holding the VNet.
	ResourceGroup string `json:"resourceGroup"`
	// Name is the VNet's name.
	Name string `json:"name"`
	// AddressSpace lists the VNet's address prefixes (CIDRs).
	AddressSpace []string `json:"addressSpace"`
	// Subnets are the VNet's subnets.
	Subnets []SubnetSpec `json:"subnets"`
	// ConnectedPrefixes are address prefixes reached through peering or a VPN/ExpressRoute
	// gateway; NSG rules count them in the VirtualNetwork service tag, as Azure does.
	ConnectedPrefixes []string `json:"connectedPrefixes,omitempty"`
}

// SubnetSpec describes one subnet of a VNet.
type SubnetSpec struct {
	// Name is the subnet's name.
	Name string `json:"name"`
	// CIDR is the subnet's address prefix; it must lie inside the VNet's address space.
	CIDR string `json:"cidr"`
	// NetworkSecurityGroup names an NSG in the VNet's resource group associated with the subnet.
	NetworkSecurityGroup string `json:"networkSecurityGroup,omitempty"`
	// RouteTable names a route table in the VNet's resource group associated with the subnet.
	RouteTable string `json:"routeTable,omitempty"`
	// ServiceEndpoints names the services (for example Microsoft.Storage) with a service
	// endpoint on the subnet, in the VNet's region.
	ServiceEndpoints []string `json:"serviceEndpoints,omitempty"`
}

// NICSpec describes one network interface attached to a VM.
type NICSpec struct {
	// ResourceGroup is the resource group holding the NIC (and its VM).
	ResourceGroup string `json:"resourceGroup"`
	// Name is the NIC's name.
	Name string `json:"name"`
	// VMName names the VM; its ID is built in the NIC's resource group. Empty means detached.
	VMName string `json:"vmName,omitempty"`
	// VNet names the VNet (looked up in the NIC's resource group first, then by name alone).
	VNet string `json:"vnet"`
	// Subnet names the subnet of VNet.
	Subnet string `json:"subnet"`
	// PrimaryIP is an optional static primary address; otherwise one is allocated dynamically.
	PrimaryIP string `json:"primaryIP,omitempty"`
	// ExtraIPConfigs names secondary IP configurations (dynamic) nicpool did not create.
	ExtraIPConfigs []string `json:"extraIPConfigs,omitempty"`
	// NetworkSecurityGroup names an NSG in the NIC's resource group associated with the NIC.
	NetworkSecurityGroup string `json:"networkSecurityGroup,omitempty"`
	// ApplicationSecurityGroups names ASGs (NIC's resource group) every IP configuration joins.
	ApplicationSecurityGroups []string `json:"applicationSecurityGroups,omitempty"`
	// LoadBalancerBackendPools names "lb/pool" pairs (NIC's resource group) the primary joins.
	LoadBalancerBackendPools []string `json:"loadBalancerBackendPools,omitempty"`
	// PublicIP names a public IP address (NIC's resource group) of the primary configuration.
	PublicIP string `json:"publicIP,omitempty"`
}

// DefaultLocation is the region used when a topology names none.
const DefaultLocation = "westeurope"

// LoadTopology reads and validates a YAML topology file.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology %s: %w", path, err)
	}
	t, err := ParseTopology(data)
	if err != nil {
		return nil, fmt.Errorf("load topology %s: %w", path, err)
	}
	return t, nil
}

// ParseTopology decodes a YAML (or JSON) topology strictly and validates it.
func ParseTopology(data []byte) (*Topology, error) {
	var t Topology
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("parse topology: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// GenerateTopology builds a topology with one VNet (vnet-0) holding one subnet (nodes)
// and n NICs named "vm-%d-nic" attached to VMs "vm-%d".
func GenerateTopology(sub, rg string, vnetCIDR, subnetCIDR string, nodes int) *Topology {
	t := &Topology{
		SubscriptionID: sub,
		Location:       DefaultLocation,
		VNets: []VNetSpec{{
			ResourceGroup: rg, Name: "vnet-0", AddressSpace: []string{vnetCIDR},
			Subnets: []SubnetSpec{{Name: "nodes", CIDR: subnetCIDR}},
		}},
	}
	for i := 0; i < nodes; i++ {
		t.NICs = append(t.NICs, NICSpec{
			ResourceGroup: rg, Name: fmt.Sprintf("vm-%d-nic", i), VMName: fmt.Sprintf("vm-%d", i),
			VNet: "vnet-0", Subnet: "nodes",
		})
	}
	return t
}

// Validate checks names, CIDRs and references, returning every problem found.
func (t *Topology) Validate() error {
	var errs []error
	if t.SubscriptionID == "" {
		errs = append(errs, errors.New("subscriptionId is required"))
	}
	vnets := map[string]bool{}
	for i, v := range t.VNets {
		errs = append(errs, validateVNet(i, v)...)
		key := lower(v.ResourceGroup) + "/" + lower(v.Name)
		if vnets[key] {
			errs = append(errs, fmt.Errorf("vnets[%d]: duplicate vnet %s/%s", i, v.ResourceGroup, v.Name))
		}
		vnets[key] = true
	}
	errs = append(errs, t.validateNICs()...)
	if len(errs) > 0 {
		return fmt.Errorf("validate topology: %w", errors.Join(errs...))
	}
	return nil
}

func validateVNet(i int, v VNetSpec) []error {
	var errs []error
	where := fmt.Sprintf("vnets[%d] (%s)", i, v.Name)
	if v.ResourceGroup == "" || v.Name == "" {
		errs = append(errs, fmt.Errorf("%s: resourceGroup and name are required", where))
	}
	if len(v.AddressSpace) == 0 {
		errs = append(errs, fmt.Errorf("%s: addressSpace is empty", where))
	}
	var spaces []netip.Prefix
	for _, c := range v.AddressSpace {
		p, err := parseIPv4Prefix(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: address space: %w", where, err))
			continue
		}
		for _, o := range spaces {
			if o.Overlaps(p) {
				errs = append(errs, fmt.Errorf("%s: address space %s overlaps %s", where, p, o))
			}
		}
		spaces = append(spaces, p)
	}
	var subnets []netip.Prefix
	names := map[string]bool{}
	for j, s := range v.Subnets {
		sw := fmt.Sprintf("%s subnets[%d] (%s)", where, j, s.Name)
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", sw))
		}
		if names[lower(s.Name)] {
			errs = append(errs, fmt.Errorf("%s: duplicate subnet name", sw))
		}
		names[lower(s.Name)] = true
		p, err := parseIPv4Prefix(s.CIDR)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sw, err))
			continue
		}
		if p.Bits() > 29 {
			errs = append(errs, fmt.Errorf("%s: %s is smaller than /29, the smallest Azure subnet", sw, p))
		}
		if !insideAny(p, spaces) {
			errs = append(errs, fmt.Errorf("%s: %s is not inside the address space %v", sw, p, v.AddressSpace))
		}
		for _, o := range subnets {
			if o.Overlaps(p) {
				errs = append(errs, fmt.Errorf("%s: %s overlaps subnet %s", sw, p, o))
			}
		}
		subnets = append(subnets, p)
	}
	return errs
}

func (t *Topology) validateNICs() []error {
	var errs []error
	seen := map[string]bool{}
	for i, n := range t.NICs {
		where := fmt.Sprintf("nics[%d] (%s)", i, n.Name)
		if n.ResourceGroup == "" || n.Name == "" {
			errs = append(errs, fmt.Errorf("%s: resourceGroup and name are required", where))
		}
		key := lower(n.ResourceGroup) + "/" + lower(n.Name)
		if seen[key] {
			errs = append(errs, fmt.Errorf("%s: duplicate nic %s/%s", where, n.ResourceGroup, n.Name))
		}
		seen[key] = true
		v, err := t.findVNet(n.ResourceGroup, n.VNet)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		var subnet *SubnetSpec
		for j := range v.Subnets {
			if strings.EqualFold(v.Subnets[j].Name, n.Subnet) {
				subnet = &v.Subnets[j]
			}
		}
		if subnet == nil {
			errs = append(errs, fmt.Errorf("%s: subnet %q not found in vnet %s", where, n.Subnet, v.Name))
			continue
		}
		if n.PrimaryIP != "" {
			if err := checkStaticIP(n.PrimaryIP, subnet.CIDR); err != nil {
				errs = append(errs, fmt.Errorf("%s: primaryIP: %w", where, err))
			}
		}
		names := map[string]bool{"ipconfig1": true}
		for _, x := range n.ExtraIPConfigs {
			if x == "" || names[lower(x)] {
				errs = append(errs, fmt.Errorf("%s: extra ip configuration name %q is empty or duplicate", where, x))
			}
			names[lower(x)] = true
		}
	}
	return errs
}

// findVNet looks a VNet up in rg first, then by name alone when that is unambiguous.
func (t *Topology) findVNet(rg, name string) (*VNetSpec, error) {
	var byName []*VNetSpec
	for i := range t.VNets {
		v := &t.VNets[i]
		if !strings.EqualFold(v.Name, name) {
			continue
		}
		if strings.EqualFold(v.ResourceGroup, rg) {
			return v, nil
		}
		byName = append(byName, v)
	}
	switch len(byName) {
	case 0:
		return nil, fmt.Errorf("vnet %q not found", name)
	case 1:
		return byName[0], nil
	default:
		return nil, fmt.Errorf("vnet %q is ambiguous: it exists in several resource groups", name)
	}
}

func checkStaticIP(ip, cidr string) error {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("parse address %q: %w", ip, err)
	}
	p, err := parseIPv4Prefix(cidr)
	if err != nil {
		return err
	}
	if !usable(p, a) {
		return fmt.Errorf("%s is not a usable address of subnet %s (Azure reserves the first four and the last)", a, p)
	}
	return nil
}

func parseIPv4Prefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse cidr %q: %w", s, err)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("cidr %q: only IPv4 is supported", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("cidr %q has host bits set (did you mean %s?)", s, p.Masked())
	}
	return p, nil
}

func insideAny(p netip.Prefix, spaces []netip.Prefix) bool {
	for _, s := range spaces {
		if s.Bits() <= p.Bits() && s.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func lower(s string) string { return strings.ToLower(s) }
