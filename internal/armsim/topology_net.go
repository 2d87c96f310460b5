package armsim

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// ResourceSpec names a resource without properties (application security group,
// public IP address).
type ResourceSpec struct {
	// ResourceGroup is the resource group holding the resource.
	ResourceGroup string `json:"resourceGroup"`
	// Name is the resource's name.
	Name string `json:"name"`
}

// NSGSpec describes a network security group; Azure's default rules are always added.
type NSGSpec struct {
	ResourceGroup string `json:"resourceGroup"`
	Name          string `json:"name"`
	// Rules are the security rules, as in ARM's securityRules.
	Rules []SecurityRuleSpec `json:"rules,omitempty"`
}

// SecurityRuleSpec is one security rule. Prefixes are CIDRs, addresses, "*" or the service
// tags VirtualNetwork, Internet, AzureLoadBalancer; ports "*", "N" or "N-M"; application
// security groups are names in the NSG's resource group.
type SecurityRuleSpec struct {
	Name                                 string   `json:"name"`
	Priority                             int32    `json:"priority"`
	Access                               string   `json:"access"`
	Direction                            string   `json:"direction"`
	Protocol                             string   `json:"protocol"`
	SourcePortRanges                     []string `json:"sourcePortRanges,omitempty"`
	DestinationPortRanges                []string `json:"destinationPortRanges,omitempty"`
	SourceAddressPrefixes                []string `json:"sourceAddressPrefixes,omitempty"`
	DestinationAddressPrefixes           []string `json:"destinationAddressPrefixes,omitempty"`
	SourceApplicationSecurityGroups      []string `json:"sourceApplicationSecurityGroups,omitempty"`
	DestinationApplicationSecurityGroups []string `json:"destinationApplicationSecurityGroups,omitempty"`
}

// RouteTableSpec describes a route table of user-defined routes.
type RouteTableSpec struct {
	ResourceGroup string      `json:"resourceGroup"`
	Name          string      `json:"name"`
	Routes        []RouteSpec `json:"routes,omitempty"`
}

// RouteSpec is one user-defined route; NextHopType is VirtualAppliance (with
// NextHopIPAddress), None, Internet, VnetLocal or VirtualNetworkGateway.
type RouteSpec struct {
	Name             string `json:"name"`
	AddressPrefix    string `json:"addressPrefix"`
	NextHopType      string `json:"nextHopType"`
	NextHopIPAddress string `json:"nextHopIpAddress,omitempty"`
}

// LBSpec describes a load balancer.
type LBSpec struct {
	ResourceGroup string         `json:"resourceGroup"`
	Name          string         `json:"name"`
	Frontends     []FrontendSpec `json:"frontends"`
	// BackendPools names the backend address pools; IP configurations join them.
	BackendPools []string     `json:"backendPools,omitempty"`
	Probes       []ProbeSpec  `json:"probes,omitempty"`
	Rules        []LBRuleSpec `json:"rules,omitempty"`
}

// FrontendSpec is a frontend: internal (VNet and Subnet, optional static PrivateIP) or
// public (PublicIP, the name of a public IP address in the LB's resource group).
type FrontendSpec struct {
	Name      string `json:"name"`
	VNet      string `json:"vnet,omitempty"`
	Subnet    string `json:"subnet,omitempty"`
	PrivateIP string `json:"privateIP,omitempty"`
	PublicIP  string `json:"publicIP,omitempty"`
}

// ProbeSpec is a health probe: Tcp, or Http/Https with a RequestPath.
type ProbeSpec struct {
	Name            string `json:"name"`
	Protocol        string `json:"protocol"`
	Port            int32  `json:"port"`
	RequestPath     string `json:"requestPath,omitempty"`
	IntervalSeconds int32  `json:"intervalSeconds,omitempty"`
}

// LBRuleSpec is a load-balancing rule; Frontend, BackendPool and Probe are names in the LB.
type LBRuleSpec struct {
	Name         string `json:"name"`
	Frontend     string `json:"frontend"`
	BackendPool  string `json:"backendPool"`
	Probe        string `json:"probe,omitempty"`
	Protocol     string `json:"protocol"`
	FrontendPort int32  `json:"frontendPort"`
	BackendPort  int32  `json:"backendPort"`
}

// loadNetResources creates the topology's ASGs, public IPs, NSGs, route tables and
// subnet associations through the same validation as their PUTs; load balancers follow
// with loadLBs, once subnets are known.
func (s *Server) loadNetResources(t *Topology) error {
	for _, a := range t.ApplicationSecurityGroups {
		if err := s.loadResource(typeASG, a.ResourceGroup, a.Name, armnetwork.ApplicationSecurityGroup{}); err != nil {
			return err
		}
	}
	for _, p := range t.PublicIPAddresses {
		body := armnetwork.PublicIPAddress{Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic)}}
		if err := s.loadResource(typePublicIP, p.ResourceGroup, p.Name, body); err != nil {
			return err
		}
	}
	for _, g := range t.NetworkSecurityGroups {
		if err := s.loadResource(typeNSG, g.ResourceGroup, g.Name, s.nsgBody(g)); err != nil {
			return err
		}
	}
	for _, rt := range t.RouteTables {
		body := armnetwork.RouteTable{Properties: &armnetwork.RouteTablePropertiesFormat{}}
		for _, r := range rt.Routes {
			rp := &armnetwork.RoutePropertiesFormat{AddressPrefix: to.Ptr(r.AddressPrefix), NextHopType: to.Ptr(armnetwork.RouteNextHopType(r.NextHopType))}
			if r.NextHopIPAddress != "" {
				rp.NextHopIPAddress = to.Ptr(r.NextHopIPAddress)
			}
			body.Properties.Routes = append(body.Properties.Routes, &armnetwork.Route{Name: to.Ptr(r.Name), Properties: rp})
		}
		if err := s.loadResource(typeRouteTable, rt.ResourceGroup, rt.Name, body); err != nil {
			return err
		}
	}
	return s.loadSubnetAssociations(t)
}

func (s *Server) nsgBody(g NSGSpec) armnetwork.SecurityGroup {
	body := armnetwork.SecurityGroup{Properties: &armnetwork.SecurityGroupPropertiesFormat{}}
	asgs := func(names []string) []*armnetwork.ApplicationSecurityGroup {
		var out []*armnetwork.ApplicationSecurityGroup
		for _, n := range names {
			out = append(out, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(s.resID(g.ResourceGroup, typeASG, n))})
		}
		return out
	}
	for _, r := range g.Rules {
		body.Properties.SecurityRules = append(body.Properties.SecurityRules, &armnetwork.SecurityRule{
			Name: to.Ptr(r.Name),
			Properties: &armnetwork.SecurityRulePropertiesFormat{
				Priority: to.Ptr(r.Priority), Access: to.Ptr(armnetwork.SecurityRuleAccess(r.Access)),
				Direction: to.Ptr(armnetwork.SecurityRuleDirection(r.Direction)), Protocol: to.Ptr(armnetwork.SecurityRuleProtocol(r.Protocol)),
				SourcePortRanges: to.SliceOfPtrs(orStar(r.SourcePortRanges)...), DestinationPortRanges: to.SliceOfPtrs(orStar(r.DestinationPortRanges)...),
				SourceAddressPrefixes:                to.SliceOfPtrs(orStarUnless(r.SourceAddressPrefixes, r.SourceApplicationSecurityGroups)...),
				DestinationAddressPrefixes:           to.SliceOfPtrs(orStarUnless(r.DestinationAddressPrefixes, r.DestinationApplicationSecurityGroups)...),
				SourceApplicationSecurityGroups:      asgs(r.SourceApplicationSecurityGroups),
				DestinationApplicationSecurityGroups: asgs(r.DestinationApplicationSecurityGroups),
			},
		})
	}
	return body
}

func orStar(v []string) []string {
	if len(v) == 0 {
		return []string{"*"}
	}
	return v
}

func orStarUnless(v, asgs []string) []string {
	if len(asgs) > 0 {
		return v
	}
	return orStar(v)
}

// loadResource builds one resource from an armnetwork body, as a PUT would.
func (s *Server) loadResource(typ, rg, name string, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("load %s %s: %w", typ, name, err)
	}
	k := kinds[strings.ToLower(typ)]
	if s.resourceLocked(typ, rg, name) != nil {
		return fmt.Errorf("load %s %s/%s: duplicate", typ, rg, name)
	}
	if _, ok := s.rgs[strings.ToLower(rg)]; !ok {
		s.rgs[strings.ToLower(rg)] = rg
	}
	b := resBase{id: s.resID(rg, typ, name), name: name, rg: rg, location: s.location, etag: newEtag(), resourceGUID: newUUID()}
	res, aerr := k.build(s, b, raw, nil)
	if aerr != nil {
		return fmt.Errorf("load %s %s/%s: %w", typ, rg, name, aerr)
	}
	s.storeResourceLocked(k, nil, res)
	return nil
}

func (s *Server) loadSubnetAssociations(t *Topology) error {
	for _, vs := range t.VNets {
		v := s.vnets[key(vs.ResourceGroup, vs.Name)]
		for _, c := range vs.ConnectedPrefixes {
			p, err := parseIPv4Prefix(c)
			if err != nil {
				return fmt.Errorf("vnet %s connected prefixes: %w", vs.Name, err)
			}
			v.connected = append(v.connected, p)
		}
		for i, ss := range vs.Subnets {
			pr := &armnetwork.SubnetPropertiesFormat{}
			if ss.NetworkSecurityGroup != "" {
				pr.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(s.resID(vs.ResourceGroup, typeNSG, ss.NetworkSecurityGroup))}
			}
			if ss.RouteTable != "" {
				pr.RouteTable = &armnetwork.RouteTable{ID: to.Ptr(s.resID(vs.ResourceGroup, typeRouteTable, ss.RouteTable))}
			}
			for _, svc := range ss.ServiceEndpoints {
				pr.ServiceEndpoints = append(pr.ServiceEndpoints, &armnetwork.ServiceEndpointPropertiesFormat{Service: to.Ptr(svc)})
			}
			sn := v.subnets[i]
			nsgID, rtID, aerr := s.parseSubnetAssociations(sn, pr)
			if aerr != nil {
				return fmt.Errorf("subnet %s: %w", sn.id, aerr)
			}
			eps, aerr := s.parseServiceEndpoints(sn, pr.ServiceEndpoints)
			if aerr != nil {
				return fmt.Errorf("subnet %s: %w", sn.id, aerr)
			}
			sn.nsg, sn.routeTable, sn.endpoints = nsgID, rtID, eps
		}
	}
	return nil
}

// loadLBs creates the topology's load balancers.
func (s *Server) loadLBs(t *Topology) error {
	for _, l := range t.LoadBalancers {
		id := s.resID(l.ResourceGroup, typeLB, l.Name)
		body := armnetwork.LoadBalancer{Properties: &armnetwork.LoadBalancerPropertiesFormat{}}
		p := body.Properties
		for _, f := range l.Frontends {
			fp := &armnetwork.FrontendIPConfigurationPropertiesFormat{}
			if f.PublicIP != "" {
				fp.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(s.resID(l.ResourceGroup, typePublicIP, f.PublicIP))}
			} else {
				vs, err := t.findVNet(l.ResourceGroup, f.VNet)
				if err != nil {
					return fmt.Errorf("load balancer %s frontend %s: %w", l.Name, f.Name, err)
				}
				fp.Subnet = &armnetwork.Subnet{ID: to.Ptr(fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/virtualNetworks/%s/subnets/%s", s.sub, vs.ResourceGroup, vs.Name, f.Subnet))}
				if f.PrivateIP != "" {
					fp.PrivateIPAllocationMethod, fp.PrivateIPAddress = to.Ptr(armnetwork.IPAllocationMethodStatic), to.Ptr(f.PrivateIP)
				}
			}
			p.FrontendIPConfigurations = append(p.FrontendIPConfigurations, &armnetwork.FrontendIPConfiguration{Name: to.Ptr(f.Name), Properties: fp})
		}
		for _, bp := range l.BackendPools {
			p.BackendAddressPools = append(p.BackendAddressPools, &armnetwork.BackendAddressPool{Name: to.Ptr(bp)})
		}
		for _, pr := range l.Probes {
			pp := &armnetwork.ProbePropertiesFormat{Protocol: to.Ptr(armnetwork.ProbeProtocol(pr.Protocol)), Port: to.Ptr(pr.Port)}
			if pr.RequestPath != "" {
				pp.RequestPath = to.Ptr(pr.RequestPath)
			}
			if pr.IntervalSeconds > 0 {
				pp.IntervalInSeconds = to.Ptr(pr.IntervalSeconds)
			}
			p.Probes = append(p.Probes, &armnetwork.Probe{Name: to.Ptr(pr.Name), Properties: pp})
		}
		for _, r := range l.Rules {
			rp := &armnetwork.LoadBalancingRulePropertiesFormat{
				Protocol: to.Ptr(armnetwork.TransportProtocol(r.Protocol)), FrontendPort: to.Ptr(r.FrontendPort), BackendPort: to.Ptr(r.BackendPort),
				FrontendIPConfiguration: &armnetwork.SubResource{ID: to.Ptr(id + "/frontendIPConfigurations/" + r.Frontend)},
				BackendAddressPool:      &armnetwork.SubResource{ID: to.Ptr(id + "/backendAddressPools/" + r.BackendPool)},
			}
			if r.Probe != "" {
				rp.Probe = &armnetwork.SubResource{ID: to.Ptr(id + "/probes/" + r.Probe)}
			}
			p.LoadBalancingRules = append(p.LoadBalancingRules, &armnetwork.LoadBalancingRule{Name: to.Ptr(r.Name), Properties: rp})
		}
		if err := s.loadResource(typeLB, l.ResourceGroup, l.Name, body); err != nil {
			return err
		}
	}
	return nil
}

// loadNICAttachments applies a NIC spec's NSG and attachments: ASGs on every IP
// configuration (Azure requires one set per NIC), backend pools and the public IP on
// the primary one.
func (s *Server) loadNICAttachments(n *nic, ns NICSpec) error {
	props := &armnetwork.InterfacePropertiesFormat{}
	if ns.NetworkSecurityGroup != "" {
		props.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(s.resID(ns.ResourceGroup, typeNSG, ns.NetworkSecurityGroup))}
	}
	nsgID, aerr := s.parseNICNSG(n, props)
	if aerr != nil {
		return fmt.Errorf("load nic %s: %w", ns.Name, aerr)
	}
	n.nsg = nsgID
	for _, c := range n.configs {
		pr := &armnetwork.InterfaceIPConfigurationPropertiesFormat{}
		for _, a := range ns.ApplicationSecurityGroups {
			pr.ApplicationSecurityGroups = append(pr.ApplicationSecurityGroups, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(s.resID(ns.ResourceGroup, typeASG, a))})
		}
		if c.primary {
			for _, bp := range ns.LoadBalancerBackendPools {
				lb, pool, _ := strings.Cut(bp, "/")
				pr.LoadBalancerBackendAddressPools = append(pr.LoadBalancerBackendAddressPools,
					&armnetwork.BackendAddressPool{ID: to.Ptr(s.resID(ns.ResourceGroup, typeLB, lb) + "/backendAddressPools/" + pool)})
			}
			if ns.PublicIP != "" {
				pr.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(s.resID(ns.ResourceGroup, typePublicIP, ns.PublicIP))}
			}
		}
		if aerr := s.parseAttachments(n, c, pr); aerr != nil {
			return fmt.Errorf("load nic %s: %w", ns.Name, aerr)
		}
	}
	if aerr := s.checkAttachments(n, &configPlan{configs: n.configs, vnet: n.vnet}); aerr != nil {
		return fmt.Errorf("load nic %s: %w", ns.Name, aerr)
	}
	s.attachLocked(n)
	return nil
}

// parsePublicIPRange returns the topology's public range or the default.
func parsePublicIPRange(t *Topology) (netip.Prefix, error) {
	if t.PublicIPRange == "" {
		return netip.MustParsePrefix(DefaultPublicIPRange), nil
	}
	p, err := parseIPv4Prefix(t.PublicIPRange)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("publicIPRange: %w", err)
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("publicIPRange %s is too small (at most /30)", p)
	}
	return p, nil
}
