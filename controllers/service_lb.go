package controllers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// svcFrontend is a Service's frontend IP configuration: a private address of
// a subnet (internal) or a public IP.
type svcFrontend struct {
	subnetID   string
	staticIP   string
	publicIPID string
}

// svcRule is one Service port as a load-balancing rule and its health probe.
type svcRule struct {
	name                      string
	protocol                  armnetwork.TransportProtocol
	frontendPort, backendPort int32
	// probe is the probe's protocol (Tcp or Http), "" for none (UDP ports:
	// Azure has no UDP probe, so every member takes flows).
	probe     armnetwork.ProbeProtocol
	probePath string
}

// svcLB is what one Service needs on a load balancer: a frontend, a backend
// pool and one rule (with its probe) per port, all named from key.
type svcLB struct {
	lbID     string
	key      string
	frontend svcFrontend
	rules    []svcRule
}

func (d svcLB) childID(kind, name string) string { return d.lbID + "/" + kind + "/" + name }

// poolID is the ID of the Service's backend pool.
func (d svcLB) poolID() string { return d.childID("backendAddressPools", d.key) }

// ours reports whether an element name belongs to the Service whose names
// start with key.
func ours(name *string, key string) bool {
	n := deref(name)
	return strings.EqualFold(n, key) || strings.HasPrefix(strings.ToLower(n), strings.ToLower(key)+"-")
}

// serviceSignature describes the Service's elements on lb (in a form that
// ignores what ARM adds: IDs' case, etags, states), for comparing what is
// with what should be.
func serviceSignature(lb *armnetwork.LoadBalancer, key string) []string {
	var out []string
	p := lbProps(lb)
	for _, f := range p.FrontendIPConfigurations {
		if f == nil || !ours(f.Name, key) || f.Properties == nil {
			continue
		}
		fp := f.Properties
		s := "fe|" + strings.ToLower(deref(f.Name))
		if fp.PublicIPAddress != nil {
			s += "|pip=" + strings.ToLower(deref(fp.PublicIPAddress.ID))
		}
		if fp.Subnet != nil {
			s += "|subnet=" + strings.ToLower(deref(fp.Subnet.ID))
			if fp.PrivateIPAllocationMethod != nil && *fp.PrivateIPAllocationMethod == armnetwork.IPAllocationMethodStatic {
				s += "|ip=" + deref(fp.PrivateIPAddress)
			}
		}
		out = append(out, s)
	}
	for _, b := range p.BackendAddressPools {
		if b != nil && ours(b.Name, key) {
			out = append(out, "pool|"+strings.ToLower(deref(b.Name)))
		}
	}
	for _, pr := range p.Probes {
		if pr == nil || !ours(pr.Name, key) || pr.Properties == nil {
			continue
		}
		out = append(out, fmt.Sprintf("probe|%s|%s|%d|%s", strings.ToLower(deref(pr.Name)), enumStr(pr.Properties.Protocol),
			deref32(pr.Properties.Port), deref(pr.Properties.RequestPath)))
	}
	for _, r := range p.LoadBalancingRules {
		if r == nil || !ours(r.Name, key) || r.Properties == nil {
			continue
		}
		rp := r.Properties
		probe := ""
		if rp.Probe != nil {
			probe = lastSegment(deref(rp.Probe.ID))
		}
		out = append(out, fmt.Sprintf("rule|%s|%s|%d|%d|%s|%s|%s|%v", strings.ToLower(deref(r.Name)), enumStr(rp.Protocol),
			deref32(rp.FrontendPort), deref32(rp.BackendPort), lastSegment(refOf(rp.FrontendIPConfiguration)),
			lastSegment(refOf(rp.BackendAddressPool)), strings.ToLower(probe), rp.EnableFloatingIP != nil && *rp.EnableFloatingIP))
	}
	slices.Sort(out)
	return out
}

// desiredSignature is serviceSignature of d as applyService writes it.
func desiredSignature(d svcLB) []string {
	lb := &armnetwork.LoadBalancer{ID: to.Ptr(d.lbID)}
	applyService(lb, d)
	return serviceSignature(lb, d.key)
}

// applyService replaces the Service's elements on lb with d's (other
// Services' elements are kept as they are).
func applyService(lb *armnetwork.LoadBalancer, d svcLB) {
	removeService(lb, d.key, false)
	p := lbProps(lb)
	fp := &armnetwork.FrontendIPConfigurationPropertiesFormat{}
	if d.frontend.publicIPID != "" {
		fp.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(d.frontend.publicIPID)}
	} else {
		fp.Subnet = &armnetwork.Subnet{ID: to.Ptr(d.frontend.subnetID)}
		fp.PrivateIPAllocationMethod = to.Ptr(armnetwork.IPAllocationMethodDynamic)
		if d.frontend.staticIP != "" {
			fp.PrivateIPAllocationMethod, fp.PrivateIPAddress = to.Ptr(armnetwork.IPAllocationMethodStatic), to.Ptr(d.frontend.staticIP)
		}
	}
	p.FrontendIPConfigurations = append(p.FrontendIPConfigurations, &armnetwork.FrontendIPConfiguration{Name: to.Ptr(d.key), Properties: fp})
	p.BackendAddressPools = append(p.BackendAddressPools, &armnetwork.BackendAddressPool{Name: to.Ptr(d.key)})
	for _, r := range d.rules {
		rp := &armnetwork.LoadBalancingRulePropertiesFormat{
			Protocol: to.Ptr(r.protocol), FrontendPort: to.Ptr(r.frontendPort), BackendPort: to.Ptr(r.backendPort),
			FrontendIPConfiguration: &armnetwork.SubResource{ID: to.Ptr(d.childID("frontendIPConfigurations", d.key))},
			BackendAddressPool:      &armnetwork.SubResource{ID: to.Ptr(d.poolID())},
			// The pod receives the flow on its own IP (DNAT to the backend),
			// not on the frontend's address.
			EnableFloatingIP: to.Ptr(false),
		}
		if r.probe != "" {
			pr := &armnetwork.ProbePropertiesFormat{Protocol: to.Ptr(r.probe), Port: to.Ptr(r.backendPort),
				IntervalInSeconds: to.Ptr[int32](5), ProbeThreshold: to.Ptr[int32](1)}
			if r.probePath != "" {
				pr.RequestPath = to.Ptr(r.probePath)
			}
			p.Probes = append(p.Probes, &armnetwork.Probe{Name: to.Ptr(r.name), Properties: pr})
			rp.Probe = &armnetwork.SubResource{ID: to.Ptr(d.childID("probes", r.name))}
		}
		p.LoadBalancingRules = append(p.LoadBalancingRules, &armnetwork.LoadBalancingRule{Name: to.Ptr(r.name), Properties: rp})
	}
}

// removeService drops the Service's rules and probes from lb and, unless
// keepPool, its backend pool; its frontend goes too unless it is the last
// one while the pool stays (Azure needs a frontend on every load balancer).
// It returns whether lb changed.
func removeService(lb *armnetwork.LoadBalancer, key string, keepPool bool) bool {
	p := lbProps(lb)
	n := len(p.LoadBalancingRules) + len(p.Probes) + len(p.BackendAddressPools) + len(p.FrontendIPConfigurations)
	p.LoadBalancingRules = slices.DeleteFunc(p.LoadBalancingRules, func(r *armnetwork.LoadBalancingRule) bool { return r == nil || ours(r.Name, key) })
	p.Probes = slices.DeleteFunc(p.Probes, func(r *armnetwork.Probe) bool { return r == nil || ours(r.Name, key) })
	if !keepPool {
		p.BackendAddressPools = slices.DeleteFunc(p.BackendAddressPools, func(b *armnetwork.BackendAddressPool) bool { return b == nil || ours(b.Name, key) })
	}
	others := slices.ContainsFunc(p.FrontendIPConfigurations, func(f *armnetwork.FrontendIPConfiguration) bool { return f != nil && !ours(f.Name, key) })
	if !keepPool || others {
		p.FrontendIPConfigurations = slices.DeleteFunc(p.FrontendIPConfigurations, func(f *armnetwork.FrontendIPConfiguration) bool { return f == nil || ours(f.Name, key) })
	}
	return n != len(p.LoadBalancingRules)+len(p.Probes)+len(p.BackendAddressPools)+len(p.FrontendIPConfigurations)
}

// poolMembers returns the IP configurations in the Service's backend pool on
// lb, as ARM reports them.
func poolMembers(lb *armnetwork.LoadBalancer, key string) []string {
	var out []string
	for _, b := range lbProps(lb).BackendAddressPools {
		if b == nil || !strings.EqualFold(deref(b.Name), key) || b.Properties == nil {
			continue
		}
		for _, c := range b.Properties.BackendIPConfigurations {
			if c != nil && c.ID != nil {
				out = append(out, *c.ID)
			}
		}
	}
	return out
}

// frontendAddress returns the private address of the Service's frontend on
// lb, or the ID of its public IP.
func frontendAddress(lb *armnetwork.LoadBalancer, key string) (privateIP, publicIPID string) {
	for _, f := range lbProps(lb).FrontendIPConfigurations {
		if f == nil || !strings.EqualFold(deref(f.Name), key) || f.Properties == nil {
			continue
		}
		if f.Properties.PublicIPAddress != nil {
			return "", deref(f.Properties.PublicIPAddress.ID)
		}
		return deref(f.Properties.PrivateIPAddress), ""
	}
	return "", ""
}

// hasFrontends reports whether lb has any frontend left.
func hasFrontends(lb *armnetwork.LoadBalancer) bool {
	return len(lbProps(lb).FrontendIPConfigurations) > 0
}

func lbProps(lb *armnetwork.LoadBalancer) *armnetwork.LoadBalancerPropertiesFormat {
	if lb.Properties == nil {
		lb.Properties = &armnetwork.LoadBalancerPropertiesFormat{}
	}
	return lb.Properties
}

func enumStr[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return strings.ToLower(string(*p))
}

func deref32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func refOf(r *armnetwork.SubResource) string {
	if r == nil {
		return ""
	}
	return deref(r.ID)
}

func lastSegment(id string) string {
	return strings.ToLower(id[strings.LastIndex(id, "/")+1:])
}
