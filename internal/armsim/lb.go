package armsim

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Operations on load balancers.
const (
	OpGetLB    Op = "GetLoadBalancer"
	OpPutLB    Op = "PutLoadBalancer"
	OpDeleteLB Op = "DeleteLoadBalancer"
)

// lbFrontend is a frontend IP configuration: a private address of a subnet (internal)
// or a public IP. Guarded by Server.mu.
type lbFrontend struct {
	name   string
	subnet *subnet
	addr   netip.Addr
	static bool
	pip    string // public IP ID
}

// LBProbe is a health probe of a load balancer.
type LBProbe struct {
	Name, Protocol string // Tcp, Http or Https
	Port           int32
	RequestPath    string
	IntervalSecs   int32
	Count          int32
}

// LBRule is a load-balancing rule; Frontend, Pool and Probe are names within the LB.
type LBRule struct {
	Name, Frontend, Pool, Probe string
	Protocol                    string // Tcp, Udp or All
	FrontendPort, BackendPort   int32
}

// loadBalancer is a load balancer. Guarded by Server.mu.
type loadBalancer struct {
	resBase
	sku       string
	frontends []*lbFrontend
	pools     []string
	probes    []LBProbe
	rules     []LBRule
}

func (l *loadBalancer) frontendID(name string) string {
	return l.id + "/frontendIPConfigurations/" + name
}
func (l *loadBalancer) poolID(name string) string  { return l.id + "/backendAddressPools/" + name }
func (l *loadBalancer) probeID(name string) string { return l.id + "/probes/" + name }

func init() {
	registerKind(&resKind{
		typ: typeLB, getOp: OpGetLB, putOp: OpPutLB, delOp: OpDeleteLB,
		build:  buildLB,
		commit: func(s *Server, old, r netResource) { s.commitLBLocked(old, r.(*loadBalancer)) },
		inUse: func(s *Server, r netResource) *armError {
			l := r.(*loadBalancer)
			for _, p := range l.pools {
				if cfg := s.poolMemberLocked(l.poolID(p)); cfg != "" {
					return errorf(http.StatusBadRequest, CodeInUseLBCannotBeDeleted,
						"Load balancer %s cannot be deleted because its backend address pool %s is referenced by %s.", l.id, l.poolID(p), cfg)
				}
			}
			return nil
		},
		release: func(s *Server, r netResource) { s.commitLBLocked(r, nil) },
		render:  func(s *Server, r netResource) any { return s.renderLB(r.(*loadBalancer)) },
	})
}

func buildLB(s *Server, b resBase, raw []byte, old netResource) (netResource, *armError) {
	var body armnetwork.LoadBalancer
	if aerr := decodeBody(raw, &body); aerr != nil {
		return nil, aerr
	}
	l := &loadBalancer{resBase: b, sku: string(armnetwork.LoadBalancerSKUNameStandard)}
	if body.SKU != nil && body.SKU.Name != nil {
		l.sku = string(*body.SKU.Name)
	}
	var oldLB *loadBalancer
	if old != nil {
		oldLB = old.(*loadBalancer)
	}
	if body.Properties == nil {
		body.Properties = &armnetwork.LoadBalancerPropertiesFormat{}
	}
	p := body.Properties
	if aerr := s.parseFrontends(l, oldLB, p.FrontendIPConfigurations); aerr != nil {
		return nil, aerr
	}
	names := map[string]bool{}
	for _, bp := range p.BackendAddressPools {
		if bp == nil || bp.Name == nil || *bp.Name == "" || names[strings.ToLower(*bp.Name)] {
			return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Every backend address pool of %s needs a unique name.", l.id)
		}
		names[strings.ToLower(*bp.Name)] = true
		l.pools = append(l.pools, *bp.Name)
	}
	if oldLB != nil {
		for _, op := range oldLB.pools {
			if !names[strings.ToLower(op)] {
				if cfg := s.poolMemberLocked(oldLB.poolID(op)); cfg != "" {
					return nil, errorf(http.StatusBadRequest, CodeInUseBackendPoolCannotBeDeleted,
						"Backend address pool %s cannot be removed because it is referenced by %s.", oldLB.poolID(op), cfg)
				}
			}
		}
	}
	if aerr := parseProbes(l, p.Probes); aerr != nil {
		return nil, aerr
	}
	return l, parseLBRules(l, p.LoadBalancingRules)
}

// parseFrontends validates and addresses the frontends; addresses held by old's
// frontends of the same name stay theirs.
func (s *Server) parseFrontends(l, old *loadBalancer, fes []*armnetwork.FrontendIPConfiguration) *armError {
	if len(fes) == 0 {
		return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Load balancer %s needs at least one frontend IP configuration.", l.id)
	}
	claimed := map[string]string{}
	taken := map[netip.Addr]bool{}
	ownFrontend := func(owner string) bool {
		return strings.HasPrefix(strings.ToLower(owner), strings.ToLower(l.id+"/frontendIPConfigurations/"))
	}
	for _, fe := range fes {
		if fe == nil || fe.Name == nil || *fe.Name == "" || fe.Properties == nil {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Every frontend IP configuration of %s needs a name and properties.", l.id)
		}
		f, id, pr := &lbFrontend{name: *fe.Name}, l.frontendID(*fe.Name), fe.Properties
		hasSubnet, hasPIP := pr.Subnet != nil && pr.Subnet.ID != nil, pr.PublicIPAddress != nil && pr.PublicIPAddress.ID != nil
		if hasSubnet == hasPIP {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat,
				"Frontend IP configuration %s must reference either a subnet or a public IP address.", id)
		}
		if hasPIP {
			pip, aerr := s.claimPublicIPLocked(*pr.PublicIPAddress.ID, id, l.location, claimed, ownFrontend)
			if aerr != nil {
				return aerr
			}
			f.pip = pip.id
			l.frontends = append(l.frontends, f)
			continue
		}
		if f.subnet = s.subnetByID(*pr.Subnet.ID); f.subnet == nil {
			return errRefNotFound(*pr.Subnet.ID, id)
		}
		if aerr := addressFrontend(l, old, f, pr, taken); aerr != nil {
			return aerr
		}
		l.frontends = append(l.frontends, f)
	}
	return nil
}

func addressFrontend(l, old *loadBalancer, f *lbFrontend, pr *armnetwork.FrontendIPConfigurationPropertiesFormat, taken map[netip.Addr]bool) *armError {
	id := l.frontendID(f.name)
	mine := func(a netip.Addr) bool {
		holder, held := f.subnet.vnet.used[a]
		return (!held || strings.EqualFold(holder, id)) && !taken[a]
	}
	f.static = pr.PrivateIPAllocationMethod != nil && strings.EqualFold(string(*pr.PrivateIPAllocationMethod), "Static")
	if f.static {
		a, err := netip.ParseAddr(deref2(pr.PrivateIPAddress))
		if err != nil || !usable(f.subnet.prefix, a) {
			return errorf(http.StatusBadRequest, CodePrivateIPNotInSubnet,
				"Private static IP address %s does not belong to the range of subnet prefix %s, or is one of the addresses Azure reserves in it.", deref2(pr.PrivateIPAddress), f.subnet.prefix)
		}
		if !mine(a) {
			return errorf(http.StatusBadRequest, CodePrivateIPAddressInUse,
				"IP configuration %s is using the private IP address %s which is already allocated to another resource.", id, a)
		}
		f.addr = a
	} else if o := old.frontend(f.name); o != nil && o.subnet == f.subnet && o.addr.IsValid() && mine(o.addr) {
		f.addr = o.addr
	} else {
		a, ok := f.subnet.lowestFrom(netip.Addr{}, nil, taken)
		if !ok {
			return errorf(http.StatusBadRequest, CodeSubnetIsFull, "Subnet %s with address prefix %s does not have enough capacity for 1 IP addresses.", f.subnet.id, f.subnet.prefix)
		}
		f.addr = a
	}
	taken[f.addr] = true
	return nil
}

func deref2(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (l *loadBalancer) frontend(name string) *lbFrontend {
	if l == nil {
		return nil
	}
	for _, f := range l.frontends {
		if strings.EqualFold(f.name, name) {
			return f
		}
	}
	return nil
}

func parseProbes(l *loadBalancer, probes []*armnetwork.Probe) *armError {
	for _, p := range probes {
		if p == nil || p.Name == nil || p.Properties == nil {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Every probe of %s needs a name and properties.", l.id)
		}
		pr := LBProbe{Name: *p.Name, Protocol: enumValue(p.Properties.Protocol, "Tcp", "Http", "Https"), IntervalSecs: 5, Count: 1}
		id := l.probeID(pr.Name)
		if pr.Protocol == "" || p.Properties.Port == nil || *p.Properties.Port < 1 || *p.Properties.Port > 65535 {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Probe %s needs a protocol (Tcp, Http, Https) and a port 1-65535.", id)
		}
		pr.Port = *p.Properties.Port
		if p.Properties.RequestPath != nil {
			pr.RequestPath = *p.Properties.RequestPath
		}
		if (pr.Protocol == "Tcp") != (pr.RequestPath == "") {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Probe %s: a requestPath is required for Http(s) probes and not allowed for Tcp probes.", id)
		}
		if v := p.Properties.IntervalInSeconds; v != nil && *v >= 5 {
			pr.IntervalSecs = *v
		}
		if v := p.Properties.ProbeThreshold; v != nil && *v >= 1 {
			pr.Count = *v
		}
		l.probes = append(l.probes, pr)
	}
	return nil
}

func parseLBRules(l *loadBalancer, rules []*armnetwork.LoadBalancingRule) *armError {
	child := func(ref *armnetwork.SubResource, prefix string, names []string) (string, bool) {
		if ref == nil || ref.ID == nil {
			return "", false
		}
		for _, n := range names {
			if strings.EqualFold(*ref.ID, prefix+n) {
				return n, true
			}
		}
		return "", false
	}
	var feNames, probeNames []string
	for _, f := range l.frontends {
		feNames = append(feNames, f.name)
	}
	for _, p := range l.probes {
		probeNames = append(probeNames, p.Name)
	}
	for _, r := range rules {
		if r == nil || r.Name == nil || r.Properties == nil {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Every load-balancing rule of %s needs a name and properties.", l.id)
		}
		p, id := r.Properties, l.id+"/loadBalancingRules/"+*r.Name
		rule := LBRule{Name: *r.Name, Protocol: enumValue(p.Protocol, "Tcp", "Udp", "All")}
		var ok bool
		if rule.Frontend, ok = child(p.FrontendIPConfiguration, l.id+"/frontendIPConfigurations/", feNames); !ok {
			return errRefNotFound(refID(p.FrontendIPConfiguration), id)
		}
		if rule.Pool, ok = child(p.BackendAddressPool, l.id+"/backendAddressPools/", l.pools); !ok {
			return errRefNotFound(refID(p.BackendAddressPool), id)
		}
		if p.Probe != nil {
			if rule.Probe, ok = child(p.Probe, l.id+"/probes/", probeNames); !ok {
				return errRefNotFound(refID(p.Probe), id)
			}
		}
		if rule.Protocol == "" || p.FrontendPort == nil || p.BackendPort == nil ||
			*p.FrontendPort < 0 || *p.FrontendPort > 65534 || *p.BackendPort < 0 || *p.BackendPort > 65535 ||
			((*p.FrontendPort == 0) != (rule.Protocol == "All")) {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat,
				"Load-balancing rule %s needs a protocol (Tcp, Udp, or All with frontend port 0 for HA ports) and valid frontend and backend ports.", id)
		}
		rule.FrontendPort, rule.BackendPort = *p.FrontendPort, *p.BackendPort
		l.rules = append(l.rules, rule)
	}
	return nil
}

func refID(r *armnetwork.SubResource) string {
	if r == nil || r.ID == nil {
		return "(none)"
	}
	return *r.ID
}

// commitLBLocked moves the VNet address ledger and the public IP owners from old's
// frontends to l's (either may be nil). Requires s.mu.
func (s *Server) commitLBLocked(old netResource, l *loadBalancer) {
	if o, _ := old.(*loadBalancer); o != nil {
		for _, f := range o.frontends {
			if f.subnet != nil && strings.EqualFold(f.subnet.vnet.used[f.addr], o.frontendID(f.name)) {
				delete(f.subnet.vnet.used, f.addr)
			}
			s.setPublicIPOwnerLocked(f.pip, o.frontendID(f.name), "")
		}
	}
	if l == nil {
		return
	}
	for _, f := range l.frontends {
		if f.subnet != nil {
			f.subnet.vnet.used[f.addr] = l.frontendID(f.name)
		}
		s.setPublicIPOwnerLocked(f.pip, "", l.frontendID(f.name))
	}
}

// setPublicIPOwnerLocked sets the owner of the public IP id to to, when its owner is
// from (any owner when from is ""). Requires s.mu.
func (s *Server) setPublicIPOwnerLocked(id, from, to string) {
	if id == "" {
		return
	}
	r, ok := s.parseRef(id)
	if !ok {
		return
	}
	p, _ := s.resourceLocked(typePublicIP, r.rg, r.name).(*publicIP)
	if p == nil {
		return
	}
	if from == "" || strings.EqualFold(p.owner, from) {
		p.owner = to
	}
}

// poolMemberLocked returns the ID of an IP configuration in the backend pool poolID, or "".
func (s *Server) poolMemberLocked(poolID string) string {
	for _, n := range s.nics {
		for _, c := range n.configs {
			for _, p := range c.pools {
				if strings.EqualFold(p, poolID) {
					return n.configID(c.name)
				}
			}
		}
	}
	return ""
}

func (s *Server) renderLB(l *loadBalancer) armnetwork.LoadBalancer {
	props := &armnetwork.LoadBalancerPropertiesFormat{
		ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded), ResourceGUID: to.Ptr(l.resourceGUID),
		FrontendIPConfigurations: []*armnetwork.FrontendIPConfiguration{}, BackendAddressPools: []*armnetwork.BackendAddressPool{},
		LoadBalancingRules: []*armnetwork.LoadBalancingRule{}, Probes: []*armnetwork.Probe{},
	}
	for _, f := range l.frontends {
		fp := &armnetwork.FrontendIPConfigurationPropertiesFormat{ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded)}
		if f.pip != "" {
			fp.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(f.pip)}
		} else {
			method := armnetwork.IPAllocationMethodDynamic
			if f.static {
				method = armnetwork.IPAllocationMethodStatic
			}
			fp.Subnet, fp.PrivateIPAddress = &armnetwork.Subnet{ID: to.Ptr(f.subnet.id)}, to.Ptr(f.addr.String())
			fp.PrivateIPAllocationMethod, fp.PrivateIPAddressVersion = to.Ptr(method), to.Ptr(armnetwork.IPVersionIPv4)
		}
		props.FrontendIPConfigurations = append(props.FrontendIPConfigurations, &armnetwork.FrontendIPConfiguration{
			ID: to.Ptr(l.frontendID(f.name)), Name: to.Ptr(f.name), Etag: to.Ptr(l.etag), Properties: fp,
		})
	}
	for _, p := range l.pools {
		bp := &armnetwork.BackendAddressPoolPropertiesFormat{ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded)}
		for _, cfg := range s.poolMembersLocked(l.poolID(p)) {
			bp.BackendIPConfigurations = append(bp.BackendIPConfigurations, &armnetwork.InterfaceIPConfiguration{ID: to.Ptr(cfg)})
		}
		props.BackendAddressPools = append(props.BackendAddressPools, &armnetwork.BackendAddressPool{
			ID: to.Ptr(l.poolID(p)), Name: to.Ptr(p), Etag: to.Ptr(l.etag), Properties: bp,
		})
	}
	for _, p := range l.probes {
		pp := &armnetwork.ProbePropertiesFormat{
			Protocol: to.Ptr(armnetwork.ProbeProtocol(p.Protocol)), Port: to.Ptr(p.Port),
			IntervalInSeconds: to.Ptr(p.IntervalSecs), ProbeThreshold: to.Ptr(p.Count), NumberOfProbes: to.Ptr(p.Count),
			ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded),
		}
		if p.RequestPath != "" {
			pp.RequestPath = to.Ptr(p.RequestPath)
		}
		props.Probes = append(props.Probes, &armnetwork.Probe{ID: to.Ptr(l.probeID(p.Name)), Name: to.Ptr(p.Name), Etag: to.Ptr(l.etag), Properties: pp})
	}
	for _, r := range l.rules {
		rp := &armnetwork.LoadBalancingRulePropertiesFormat{
			Protocol: to.Ptr(armnetwork.TransportProtocol(r.Protocol)), FrontendPort: to.Ptr(r.FrontendPort), BackendPort: to.Ptr(r.BackendPort),
			FrontendIPConfiguration: &armnetwork.SubResource{ID: to.Ptr(l.frontendID(r.Frontend))},
			BackendAddressPool:      &armnetwork.SubResource{ID: to.Ptr(l.poolID(r.Pool))},
			EnableFloatingIP:        to.Ptr(false), ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded),
		}
		if r.Probe != "" {
			rp.Probe = &armnetwork.SubResource{ID: to.Ptr(l.probeID(r.Probe))}
		}
		props.LoadBalancingRules = append(props.LoadBalancingRules, &armnetwork.LoadBalancingRule{
			ID: to.Ptr(l.id + "/loadBalancingRules/" + r.Name), Name: to.Ptr(r.Name), Etag: to.Ptr(l.etag), Properties: rp,
		})
	}
	return armnetwork.LoadBalancer{
		ID: to.Ptr(l.id), Name: to.Ptr(l.name), Type: to.Ptr("Microsoft.Network/loadBalancers"),
		Location: to.Ptr(l.location), Etag: to.Ptr(l.etag), Tags: l.tags, Properties: props,
		SKU: &armnetwork.LoadBalancerSKU{Name: to.Ptr(armnetwork.LoadBalancerSKUName(l.sku)), Tier: to.Ptr(armnetwork.LoadBalancerSKUTierRegional)},
	}
}

// poolMembersLocked lists the IP configurations in the backend pool poolID.
func (s *Server) poolMembersLocked(poolID string) []string {
	var out []string
	for _, n := range s.nics {
		for _, c := range n.configs {
			for _, p := range c.pools {
				if strings.EqualFold(p, poolID) {
					out = append(out, n.configID(c.name))
				}
			}
		}
	}
	return out
}
