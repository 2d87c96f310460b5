package armsim

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Operations on network security groups.
const (
	OpGetNSG    Op = "GetNetworkSecurityGroup"
	OpPutNSG    Op = "PutNetworkSecurityGroup"
	OpDeleteNSG Op = "DeleteNetworkSecurityGroup"
)

// Service tags armsim understands in security rules.
const (
	TagVirtualNetwork    = "VirtualNetwork"
	TagInternet          = "Internet"
	TagAzureLoadBalancer = "AzureLoadBalancer"
)

// SecurityRule is one NSG rule as the fabric evaluates it: lower priority first, the
// first match decides. Prefixes hold CIDRs, "*" or a service tag; ports "*", "N" or
// "N-M"; ASGs are application security group IDs.
type SecurityRule struct {
	Name                          string
	Priority                      int32
	Access, Direction, Protocol   string
	SourcePorts, DestinationPorts []string
	SourcePrefixes, DestPrefixes  []string
	SourceASGs, DestinationASGs   []string
	Default                       bool
}

// nsg is a network security group. Guarded by Server.mu.
type nsg struct {
	resBase
	rules []SecurityRule
}

// defaultSecurityRules are the rules Azure puts in every NSG, below every user rule.
var defaultSecurityRules = []SecurityRule{
	{Name: "AllowVnetInBound", Priority: 65000, Access: "Allow", Direction: "Inbound", Protocol: "*", SourcePorts: []string{"*"}, DestinationPorts: []string{"*"}, SourcePrefixes: []string{TagVirtualNetwork}, DestPrefixes: []string{TagVirtualNetwork}, Default: true},
	{Name: "AllowAzureLoadBalancerInBound", Priority: 65001, Access: "Allow", Direction: "Inbound", Protocol: "*", SourcePorts: []string{"*"}, DestinationPorts: []string{"*"}, SourcePrefixes: []string{TagAzureLoadBalancer}, DestPrefixes: []string{"*"}, Default: true},
	{Name: "DenyAllInBound", Priority: 65500, Access: "Deny", Direction: "Inbound", Protocol: "*", SourcePorts: []string{"*"}, DestinationPorts: []string{"*"}, SourcePrefixes: []string{"*"}, DestPrefixes: []string{"*"}, Default: true},
	{Name: "AllowVnetOutBound", Priority: 65000, Access: "Allow", Direction: "Outbound", Protocol: "*", SourcePorts: []string{"*"}, DestinationPorts: []string{"*"}, SourcePrefixes: []string{TagVirtualNetwork}, DestPrefixes: []string{TagVirtualNetwork}, Default: true},
	{Name: "AllowInternetOutBound", Priority: 65001, Access: "Allow", Direction: "Outbound", Protocol: "*", SourcePorts: []string{"*"}, DestinationPorts: []string{"*"}, SourcePrefixes: []string{"*"}, DestPrefixes: []string{TagInternet}, Default: true},
	{Name: "DenyAllOutBound", Priority: 65500, Access: "Deny", Direction: "Outbound", Protocol: "*", SourcePorts: []string{"*"}, DestinationPorts: []string{"*"}, SourcePrefixes: []string{"*"}, DestPrefixes: []string{"*"}, Default: true},
}

func init() {
	registerKind(&resKind{
		typ: typeNSG, getOp: OpGetNSG, putOp: OpPutNSG, delOp: OpDeleteNSG,
		build: buildNSG,
		inUse: func(s *Server, r netResource) *armError {
			g := r.(*nsg)
			if by := s.nsgUserLocked(g.id); by != "" {
				return errorf(http.StatusBadRequest, CodeInUseNSGCannotBeDeleted,
					"Network security group %s cannot be deleted because it is in use by the following resources: %s. In order to delete the Network security group, remove the association with the resource(s).", g.id, by)
			}
			return nil
		},
		render: func(s *Server, r netResource) any { return s.renderNSG(r.(*nsg)) },
	})
}

func buildNSG(s *Server, b resBase, raw []byte, _ netResource) (netResource, *armError) {
	var body armnetwork.SecurityGroup
	if aerr := decodeBody(raw, &body); aerr != nil {
		return nil, aerr
	}
	g := &nsg{resBase: b}
	if body.Properties == nil {
		return g, nil
	}
	seen := map[string]string{} // direction/priority -> rule name
	names := map[string]bool{}
	for _, sr := range body.Properties.SecurityRules {
		rule, aerr := s.parseSecurityRule(g, sr)
		if aerr != nil {
			return nil, aerr
		}
		if names[strings.ToLower(rule.Name)] {
			return nil, errorf(http.StatusBadRequest, "DuplicateResourceName", "Network security group %s has two security rules named %s.", g.id, rule.Name)
		}
		names[strings.ToLower(rule.Name)] = true
		k := rule.Direction + "/" + strconv.Itoa(int(rule.Priority))
		if other, dup := seen[k]; dup {
			return nil, errorf(http.StatusBadRequest, CodeSecurityRuleConflict,
				"Security rule %s conflicts with rule %s. Rules cannot have the same Priority and Direction.", rule.Name, other)
		}
		seen[k] = rule.Name
		g.rules = append(g.rules, rule)
	}
	return g, nil
}

// parseSecurityRule validates one rule as the network resource provider does.
func (s *Server) parseSecurityRule(g *nsg, sr *armnetwork.SecurityRule) (SecurityRule, *armError) {
	var r SecurityRule
	if sr == nil || sr.Name == nil || *sr.Name == "" || sr.Properties == nil {
		return r, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Every security rule of %s needs a name and properties.", g.id)
	}
	p, id := sr.Properties, g.id+"/securityRules/"+*sr.Name
	r.Name = *sr.Name
	invalid := func(what string, v any) *armError {
		return errorf(http.StatusBadRequest, CodeSecurityRuleInvalidParameter, "Security rule %s has invalid %s: %v.", id, what, v)
	}
	if p.Priority == nil || *p.Priority < 100 || *p.Priority > 4096 {
		return r, errorf(http.StatusBadRequest, CodeSecurityRuleInvalidPriority,
			"Security rule %s has invalid Priority. Value provided: %v. Allowed range 100-4096.", id, deref(p.Priority))
	}
	r.Priority = *p.Priority
	if r.Access = enumValue(p.Access, "Allow", "Deny"); r.Access == "" {
		return r, invalid("Access", deref(p.Access))
	}
	if r.Direction = enumValue(p.Direction, "Inbound", "Outbound"); r.Direction == "" {
		return r, invalid("Direction", deref(p.Direction))
	}
	if r.Protocol = enumValue(p.Protocol, "Tcp", "Udp", "Icmp", "Esp", "Ah", "*"); r.Protocol == "" {
		return r, invalid("Protocol", deref(p.Protocol))
	}
	var aerr *armError
	if r.SourcePorts, aerr = portList(id, "SourcePortRange", p.SourcePortRange, p.SourcePortRanges); aerr != nil {
		return r, aerr
	}
	if r.DestinationPorts, aerr = portList(id, "DestinationPortRange", p.DestinationPortRange, p.DestinationPortRanges); aerr != nil {
		return r, aerr
	}
	if r.SourceASGs, aerr = s.asgList(id, g.location, p.SourceApplicationSecurityGroups); aerr != nil {
		return r, aerr
	}
	if r.DestinationASGs, aerr = s.asgList(id, g.location, p.DestinationApplicationSecurityGroups); aerr != nil {
		return r, aerr
	}
	if r.SourcePrefixes, aerr = prefixList(id, "SourceAddressPrefix", p.SourceAddressPrefix, p.SourceAddressPrefixes, len(r.SourceASGs) > 0); aerr != nil {
		return r, aerr
	}
	if r.DestPrefixes, aerr = prefixList(id, "DestinationAddressPrefix", p.DestinationAddressPrefix, p.DestinationAddressPrefixes, len(r.DestinationASGs) > 0); aerr != nil {
		return r, aerr
	}
	return r, s.checkRuleASGsOneVNet(id, append(append([]string{}, r.SourceASGs...), r.DestinationASGs...))
}

// checkRuleASGsOneVNet refuses a rule whose ASGs have members in different VNets.
func (s *Server) checkRuleASGsOneVNet(id string, asgIDs []string) *armError {
	var first *vnet
	for _, x := range asgIDs {
		res, _ := s.resolveLocked(x, typeASG, s.resourceLocationLocked(x), id)
		a, _ := res.(*asg)
		if a == nil {
			continue
		}
		if v := a.vnet(); v != nil {
			if first != nil && first != v {
				return errorf(http.StatusBadRequest, CodeASGsInRuleFromDifferentVNets,
					"Security Rule %s has Application Security Groups (ASGs) from multiple virtual networks (%s, %s). All ASGs on the Security Rule must be from the same virtual network.", id, first.id, v.id)
			}
			first = v
		}
	}
	return nil
}

// resourceLocationLocked returns the location of the resource id names ("" if none).
func (s *Server) resourceLocationLocked(id string) string {
	r, ok := s.parseRef(id)
	if !ok {
		return ""
	}
	if res := s.resourceLocked(r.typ, r.rg, r.name); res != nil {
		return res.base().location
	}
	return ""
}

func (s *Server) asgList(by, location string, refs []*armnetwork.ApplicationSecurityGroup) ([]string, *armError) {
	var out []string
	for _, a := range refs {
		if a == nil || a.ID == nil {
			return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "An application security group reference of %s has no id.", by)
		}
		res, aerr := s.resolveLocked(*a.ID, typeASG, location, by)
		if aerr != nil {
			return nil, aerr
		}
		out = append(out, res.base().id)
	}
	return out, nil
}

func enumValue[T ~string](v *T, allowed ...string) string {
	if v == nil {
		return ""
	}
	for _, a := range allowed {
		if strings.EqualFold(string(*v), a) {
			return a
		}
	}
	return ""
}

func deref[T any](p *T) any {
	if p == nil {
		return "(none)"
	}
	return *p
}

// portList merges the single and plural port fields; each entry is "*", "N" or "N-M".
func portList(id, field string, one *string, many []*string) ([]string, *armError) {
	vals := collect(one, many)
	if len(vals) == 0 {
		return nil, errorf(http.StatusBadRequest, CodeSecurityRuleInvalidParameter, "Security rule %s has no %s.", id, field)
	}
	for _, v := range vals {
		if _, _, ok := ParsePortRange(v); !ok {
			return nil, errorf(http.StatusBadRequest, CodeSecurityRuleInvalidPortRange,
				"Security rule %s has invalid Port range. Value provided: %s. Value should be an integer OR integer range with '-' delimiter. Valid range 0-65535.", id, v)
		}
	}
	return vals, nil
}

// ParsePortRange parses "*" (0-65535), "N" or "N-M".
func ParsePortRange(v string) (lo, hi int, ok bool) {
	if v == "*" {
		return 0, 65535, true
	}
	a, b, isRange := strings.Cut(v, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := lo, error(nil)
	if isRange {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 0 || hi > 65535 || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// prefixList merges the single and plural prefix fields: CIDRs, addresses, "*" or a
// service tag. With ASGs given, no prefix is allowed.
func prefixList(id, field string, one *string, many []*string, haveASGs bool) ([]string, *armError) {
	vals := collect(one, many)
	if haveASGs {
		if len(vals) > 0 {
			return nil, errorf(http.StatusBadRequest, CodeSecurityRuleInvalidParameter,
				"Security rule %s cannot have both %s and application security groups.", id, field)
		}
		return nil, nil
	}
	if len(vals) == 0 {
		return nil, errorf(http.StatusBadRequest, CodeSecurityRuleInvalidParameter, "Security rule %s has no %s.", id, field)
	}
	for i, v := range vals {
		switch {
		case v == "*":
		case strings.EqualFold(v, TagVirtualNetwork):
			vals[i] = TagVirtualNetwork
		case strings.EqualFold(v, TagInternet):
			vals[i] = TagInternet
		case strings.EqualFold(v, TagAzureLoadBalancer):
			vals[i] = TagAzureLoadBalancer
		default:
			if _, err := ParsePrefixOrAddr(v); err != nil {
				return nil, errorf(http.StatusBadRequest, CodeSecurityRuleInvalidAddressPrefix,
					"Security rule %s has invalid Address prefix. Value provided: %s.", id, v)
			}
		}
	}
	return vals, nil
}

// ParsePrefixOrAddr parses an IPv4 CIDR or a single IPv4 address (as a /32).
func ParsePrefixOrAddr(v string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
		return netip.PrefixFrom(a, 32), nil
	}
	p, err := netip.ParsePrefix(v)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, errInvalidPrefix
	}
	return p.Masked(), nil
}

func collect(one *string, many []*string) []string {
	var out []string
	if one != nil && *one != "" {
		out = append(out, *one)
	}
	for _, m := range many {
		if m != nil && *m != "" {
			out = append(out, *m)
		}
	}
	return out
}

func (g *nsg) referencesASG(id string) bool {
	for _, r := range g.rules {
		for _, x := range append(append([]string{}, r.SourceASGs...), r.DestinationASGs...) {
			if strings.EqualFold(x, id) {
				return true
			}
		}
	}
	return false
}

// nsgUserLocked returns the ID of a subnet or NIC associated with the NSG id, or "".
func (s *Server) nsgUserLocked(id string) string {
	for _, v := range s.vnets {
		for _, sn := range v.subnets {
			if strings.EqualFold(sn.nsg, id) {
				return sn.id
			}
		}
	}
	for _, n := range s.nics {
		if strings.EqualFold(n.nsg, id) {
			return n.id
		}
	}
	return ""
}

func (s *Server) renderNSG(g *nsg) armnetwork.SecurityGroup {
	props := &armnetwork.SecurityGroupPropertiesFormat{
		ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded), ResourceGUID: to.Ptr(g.resourceGUID),
		SecurityRules: []*armnetwork.SecurityRule{}, DefaultSecurityRules: []*armnetwork.SecurityRule{},
	}
	for _, r := range g.rules {
		props.SecurityRules = append(props.SecurityRules, renderRule(g, r, "securityRules"))
	}
	for _, r := range defaultSecurityRules {
		props.DefaultSecurityRules = append(props.DefaultSecurityRules, renderRule(g, r, "defaultSecurityRules"))
	}
	for _, v := range s.vnets {
		for _, sn := range v.subnets {
			if strings.EqualFold(sn.nsg, g.id) {
				props.Subnets = append(props.Subnets, &armnetwork.Subnet{ID: to.Ptr(sn.id)})
			}
		}
	}
	for _, n := range s.nics {
		if strings.EqualFold(n.nsg, g.id) {
			props.NetworkInterfaces = append(props.NetworkInterfaces, &armnetwork.Interface{ID: to.Ptr(n.id)})
		}
	}
	return armnetwork.SecurityGroup{
		ID: to.Ptr(g.id), Name: to.Ptr(g.name), Type: to.Ptr("Microsoft.Network/networkSecurityGroups"),
		Location: to.Ptr(g.location), Etag: to.Ptr(g.etag), Tags: g.tags, Properties: props,
	}
}

func renderRule(g *nsg, r SecurityRule, coll string) *armnetwork.SecurityRule {
	p := &armnetwork.SecurityRulePropertiesFormat{
		Priority:          to.Ptr(r.Priority),
		Access:            to.Ptr(armnetwork.SecurityRuleAccess(r.Access)),
		Direction:         to.Ptr(armnetwork.SecurityRuleDirection(r.Direction)),
		Protocol:          to.Ptr(armnetwork.SecurityRuleProtocol(r.Protocol)),
		ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded),
	}
	one := func(vals []string) (*string, []*string) {
		if len(vals) == 1 {
			return to.Ptr(vals[0]), []*string{}
		}
		return nil, to.SliceOfPtrs(vals...)
	}
	p.SourcePortRange, p.SourcePortRanges = one(r.SourcePorts)
	p.DestinationPortRange, p.DestinationPortRanges = one(r.DestinationPorts)
	if len(r.SourceASGs) == 0 {
		p.SourceAddressPrefix, p.SourceAddressPrefixes = one(r.SourcePrefixes)
	}
	if len(r.DestinationASGs) == 0 {
		p.DestinationAddressPrefix, p.DestinationAddressPrefixes = one(r.DestPrefixes)
	}
	for _, a := range r.SourceASGs {
		p.SourceApplicationSecurityGroups = append(p.SourceApplicationSecurityGroups, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(a)})
	}
	for _, a := range r.DestinationASGs {
		p.DestinationApplicationSecurityGroups = append(p.DestinationApplicationSecurityGroups, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(a)})
	}
	return &armnetwork.SecurityRule{
		ID: to.Ptr(g.id + "/" + coll + "/" + r.Name), Name: to.Ptr(r.Name),
		Type: to.Ptr("Microsoft.Network/networkSecurityGroups/" + coll), Etag: to.Ptr(g.etag), Properties: p,
	}
}
