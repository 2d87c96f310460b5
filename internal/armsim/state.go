package armsim

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

const (
	stateSucceeded = "Succeeded"
	stateUpdating  = "Updating"
	stateFailed    = "Failed"
	opInProgress   = "InProgress"
	opSucceeded    = "Succeeded"
	opFailed       = "Failed"
)

// nic is a network interface. Guarded by Server.mu.
type nic struct {
	id, name, rg string
	location     string
	vmID         string
	etag         string
	state        string
	resourceGUID string
	mac          string
	tags         map[string]*string
	configs      []*ipConfig
	vnet         *vnet
	nsg          string     // ID of the NIC's network security group, "" for none
	op           *operation // the PUT in flight, nil when none
}

// ipConfig is one IP configuration of a nic. Guarded by Server.mu.
type ipConfig struct {
	name    string
	addr    netip.Addr
	static  bool
	primary bool
	subnet  *subnet
	state   string
	asgs    []string // application security group IDs
	pools   []string // load balancer backend address pool IDs
	pip     string   // public IP address ID, "" for none
}

// operation is an Azure-AsyncOperation of a NIC PUT. Guarded by Server.mu.
type operation struct {
	id      string
	nicKey  string
	status  string
	created time.Time
	due     time.Time // zero while hung
	timer   *time.Timer
	// failCode, when set, makes the operation end Failed with this error code.
	failCode string
}

func (n *nic) configID(name string) string { return n.id + "/ipConfigurations/" + name }

func (n *nic) primaryConfig() *ipConfig {
	for _, c := range n.configs {
		if c.primary {
			return c
		}
	}
	return nil
}

// load builds the initial state from a validated topology.
func (s *Server) load(t *Topology) error {
	for _, vs := range t.VNets {
		v := &vnet{
			id:   fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/virtualNetworks/%s", s.sub, vs.ResourceGroup, vs.Name),
			name: vs.Name, rg: vs.ResourceGroup, used: map[netip.Addr]string{},
		}
		for _, c := range vs.AddressSpace {
			p, err := parseIPv4Prefix(c)
			if err != nil {
				return err
			}
			v.space = append(v.space, p)
		}
		for _, ss := range vs.Subnets {
			p, err := parseIPv4Prefix(ss.CIDR)
			if err != nil {
				return err
			}
			v.subnets = append(v.subnets, &subnet{id: v.id + "/subnets/" + ss.Name, name: ss.Name, prefix: p, vnet: v})
		}
		s.vnets[key(vs.ResourceGroup, vs.Name)] = v
		s.rgs[strings.ToLower(vs.ResourceGroup)] = vs.ResourceGroup
	}
	var err error
	if s.pipRange, err = parsePublicIPRange(t); err != nil {
		return err
	}
	if err := s.loadNetResources(t); err != nil {
		return err
	}
	// Static primaries first, so dynamic allocation never takes an address a later NIC pins.
	// Allocation is sequential, so a per-subnet cursor keeps loading large topologies linear.
	cursor := map[*subnet]netip.Addr{}
	for pass := 0; pass < 2; pass++ {
		for _, ns := range t.NICs {
			if (ns.PrimaryIP != "") != (pass == 0) {
				continue
			}
			if err := s.loadNIC(t, ns, cursor); err != nil {
				return err
			}
		}
	}
	// Load balancers after the NICs' static primaries (an internal frontend takes a
	// dynamic address like any IP configuration), attachments after load balancers.
	if err := s.loadLBs(t); err != nil {
		return err
	}
	for _, ns := range t.NICs {
		if err := s.loadNICAttachments(s.nics[key(ns.ResourceGroup, ns.Name)], ns); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) loadNIC(t *Topology, ns NICSpec, cursor map[*subnet]netip.Addr) error {
	vs, err := t.findVNet(ns.ResourceGroup, ns.VNet)
	if err != nil {
		return fmt.Errorf("load nic %s: %w", ns.Name, err)
	}
	v := s.vnets[key(vs.ResourceGroup, vs.Name)]
	var sn *subnet
	for _, x := range v.subnets {
		if strings.EqualFold(x.name, ns.Subnet) {
			sn = x
		}
	}
	if sn == nil {
		return fmt.Errorf("load nic %s: subnet %q not found", ns.Name, ns.Subnet)
	}
	n := s.newNIC(ns.ResourceGroup, ns.Name, s.location)
	n.vnet = v
	if ns.VMName != "" {
		n.vmID = fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s", s.sub, ns.ResourceGroup, ns.VMName)
	}
	primary := &ipConfig{name: "ipconfig1", primary: true, subnet: sn, state: stateSucceeded}
	if ns.PrimaryIP != "" {
		a, _ := netip.ParseAddr(ns.PrimaryIP)
		if _, held := v.used[a]; held {
			return fmt.Errorf("load nic %s: primary ip %s is already in use", ns.Name, a)
		}
		primary.addr, primary.static = a, true
	}
	n.configs = []*ipConfig{primary}
	for _, x := range ns.ExtraIPConfigs {
		n.configs = append(n.configs, &ipConfig{name: x, subnet: sn, state: stateSucceeded})
	}
	for _, c := range n.configs {
		if !c.addr.IsValid() {
			a, ok := sn.lowestFrom(cursor[sn], nil, nil)
			if !ok {
				return fmt.Errorf("load nic %s: subnet %s is full", ns.Name, sn.prefix)
			}
			c.addr, cursor[sn] = a, a
		}
		v.used[c.addr] = n.configID(c.name)
	}
	s.nics[key(ns.ResourceGroup, ns.Name)] = n
	s.rgs[strings.ToLower(ns.ResourceGroup)] = ns.ResourceGroup
	return nil
}

// newNIC returns an empty, succeeded nic with fresh identifiers.
func (s *Server) newNIC(rg, name, location string) *nic {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	b[0] = 0x00
	return &nic{
		id:           fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/%s", s.sub, rg, name),
		name:         name,
		rg:           rg,
		location:     location,
		etag:         newEtag(),
		state:        stateSucceeded,
		resourceGUID: newUUID(),
		mac:          fmt.Sprintf("%02X-%02X-%02X-%02X-%02X-%02X", b[0], b[1], b[2], b[3], b[4], b[5]),
	}
}

// subnetByID resolves a subnet resource ID of this subscription (case-insensitive).
func (s *Server) subnetByID(id string) *subnet {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	// subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/V/subnets/N
	if len(parts) != 10 || !strings.EqualFold(parts[1], s.sub) ||
		!strings.EqualFold(parts[6], "virtualNetworks") || !strings.EqualFold(parts[8], "subnets") {
		return nil
	}
	v := s.vnets[key(parts[3], parts[7])]
	if v == nil {
		return nil
	}
	for _, sn := range v.subnets {
		if strings.EqualFold(sn.name, parts[9]) {
			return sn
		}
	}
	return nil
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func newEtag() string { return `W/"` + newUUID() + `"` }
