package armsim

import (
	"net/http"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Attachments of an IP configuration, as Azure holds them: references by ID to
// application security groups, load balancer backend pools and a public IP.

// parseAttachments reads the references of one requested IP configuration into c,
// resolving each (it must exist, in the NIC's region). Requires s.mu.
func (s *Server) parseAttachments(n *nic, c *ipConfig, pr *armnetwork.InterfaceIPConfigurationPropertiesFormat) *armError {
	by := n.configID(c.name)
	asgs, aerr := s.asgList(by, n.location, pr.ApplicationSecurityGroups)
	if aerr != nil {
		return aerr
	}
	c.asgs = asgs
	for _, bp := range pr.LoadBalancerBackendAddressPools {
		if bp == nil || bp.ID == nil {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "A backend address pool reference of %s has no id.", by)
		}
		id, aerr := s.resolvePoolLocked(*bp.ID, n.location, by)
		if aerr != nil {
			return aerr
		}
		c.pools = append(c.pools, id)
	}
	if pr.PublicIPAddress != nil {
		if pr.PublicIPAddress.ID == nil {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "The public IP address reference of %s has no id.", by)
		}
		res, aerr := s.resolveLocked(*pr.PublicIPAddress.ID, typePublicIP, n.location, by)
		if aerr != nil {
			return aerr
		}
		c.pip = res.base().id
	}
	return nil
}

// resolvePoolLocked resolves a backend address pool ID to its canonical form.
func (s *Server) resolvePoolLocked(id, location, by string) (string, *armError) {
	r, ok := s.parseRef(id)
	if !ok || !strings.EqualFold(r.typ, typeLB) || !strings.EqualFold(r.childType, "backendAddressPools") {
		return "", errRefNotFound(id, by)
	}
	l, _ := s.resourceLocked(typeLB, r.rg, r.name).(*loadBalancer)
	if l == nil || !strings.EqualFold(l.location, location) {
		return "", errRefNotFound(id, by)
	}
	for _, p := range l.pools {
		if strings.EqualFold(p, r.child) {
			return l.poolID(p), nil
		}
	}
	return "", errRefNotFound(id, by)
}

// checkAttachments applies the rules that span a NIC's configurations: all carry the same
// application security groups, an ASG's members are all in one VNet, and a public IP is
// associated with at most one IP configuration. Requires s.mu.
func (s *Server) checkAttachments(n *nic, plan *configPlan) *armError {
	first := plan.configs[0]
	for _, c := range plan.configs[1:] {
		if !sameIDs(first.asgs, c.asgs) {
			return errorf(http.StatusBadRequest, CodeASGsDifferOnNIC,
				"All IPConfigurations on a Network Interface should reference the same set of Application Security Groups. IPConfiguration %s references ASG(s) %s, whereas IPConfiguration %s references ASG(s) %s.",
				n.configID(first.name), strings.Join(first.asgs, ","), n.configID(c.name), strings.Join(c.asgs, ","))
		}
	}
	for _, id := range first.asgs {
		r, _ := s.parseRef(id)
		a := s.resourceLocked(typeASG, r.rg, r.name).(*asg)
		if v := a.vnetExcept(n, id); v != nil && v != plan.vnet {
			return errorf(http.StatusBadRequest, CodeASGInDifferentVNet,
				"IP configurations of network interface %s are in virtual network %s, but application security group %s already has members in virtual network %s. All members of an application security group must be in the same virtual network.",
				n.id, plan.vnet.id, a.id, v.id)
		}
	}
	claimed := map[string]string{}
	ownConfig := func(owner string) bool {
		return strings.HasPrefix(strings.ToLower(owner), strings.ToLower(n.id+"/ipConfigurations/"))
	}
	for _, c := range plan.configs {
		if c.pip == "" {
			continue
		}
		if _, aerr := s.claimPublicIPLocked(c.pip, n.configID(c.name), n.location, claimed, ownConfig); aerr != nil {
			return aerr
		}
	}
	return nil
}

// vnetExcept returns a VNet where a has members other than n's configurations, or nil.
func (a *asg) vnetExcept(n *nic, id string) *vnet {
	own := 0
	for _, c := range n.configs {
		for _, x := range c.asgs {
			if strings.EqualFold(x, id) {
				own++
			}
		}
	}
	for v, count := range a.members {
		if v == n.vnet {
			count -= own
		}
		if count > 0 {
			return v
		}
	}
	return nil
}

// detachLocked drops n's configurations from ASG membership counts and public IP
// owners; attachLocked adds them. Around a PUT, detach runs on the old configurations
// and attach on the new. Requires s.mu.
func (s *Server) detachLocked(n *nic) {
	for _, c := range n.configs {
		for _, id := range c.asgs {
			if a := s.asgLocked(id); a != nil && n.vnet != nil {
				a.members[n.vnet]--
			}
		}
		s.setPublicIPOwnerLocked(c.pip, n.configID(c.name), "")
	}
}

func (s *Server) attachLocked(n *nic) {
	for _, c := range n.configs {
		for _, id := range c.asgs {
			if a := s.asgLocked(id); a != nil && n.vnet != nil {
				a.members[n.vnet]++
			}
		}
		s.setPublicIPOwnerLocked(c.pip, "", n.configID(c.name))
	}
}

func (s *Server) asgLocked(id string) *asg {
	r, ok := s.parseRef(id)
	if !ok {
		return nil
	}
	a, _ := s.resourceLocked(typeASG, r.rg, r.name).(*asg)
	return a
}

// parseNICNSG resolves the NIC's own network security group reference ("" for none).
func (s *Server) parseNICNSG(n *nic, body *armnetwork.InterfacePropertiesFormat) (string, *armError) {
	if body == nil || body.NetworkSecurityGroup == nil {
		return "", nil
	}
	if body.NetworkSecurityGroup.ID == nil {
		return "", errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "The network security group reference of %s has no id.", n.id)
	}
	res, aerr := s.resolveLocked(*body.NetworkSecurityGroup.ID, typeNSG, n.location, n.id)
	if aerr != nil {
		return "", aerr
	}
	return res.base().id, nil
}

// renderAttachments adds c's references to the rendered IP configuration properties.
func renderAttachments(c *ipConfig, p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
	for _, id := range c.asgs {
		p.ApplicationSecurityGroups = append(p.ApplicationSecurityGroups, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(id)})
	}
	for _, id := range c.pools {
		p.LoadBalancerBackendAddressPools = append(p.LoadBalancerBackendAddressPools, &armnetwork.BackendAddressPool{ID: to.Ptr(id)})
	}
	if c.pip != "" {
		p.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(c.pip)}
	}
}

// sortedLower returns ids lower-cased and sorted, for comparisons and snapshots.
func sortedLower(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	out := make([]string, len(ids))
	for i, x := range ids {
		out[i] = strings.ToLower(x)
	}
	sort.Strings(out)
	return out
}
