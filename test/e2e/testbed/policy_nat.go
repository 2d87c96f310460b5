package testbed

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nicpool/nicpool/internal/armsim"
)

// natHooks builds the load balancers' and public IPs' address translation: DNAT in
// PREROUTING (so the NSGs see the backend's private address, as in Azure) and SNAT of a
// private IP with a public IP towards the internet.
func (b *policyBuilder) natHooks() {
	var pre, post [][]string
	for li, lb := range b.in.net.LoadBalancers {
		for ri, r := range lb.Rules {
			fe := frontendOf(lb, r.Frontend)
			if fe == nil {
				continue
			}
			backends := b.healthyBackends(lb, r)
			chain := fmt.Sprintf("L%dR%d", li, ri)
			c := b.chain("nat", chain)
			c.rules = spreadRules(backends, r)
			for _, addr := range []netip.Addr{fe.PrivateIP, fe.PublicIP} {
				if !addr.IsValid() {
					continue
				}
				if fe.PrivateIP.IsValid() && addr == fe.PrivateIP {
					b.p.frontends = append(b.p.frontends, addr)
				}
				for _, m := range lbMatches(r) {
					pre = append(pre, append(append([]string{"-d", addr.String() + "/32"}, m...), "-j", b.prefix+chain))
				}
			}
		}
	}
	for _, pip := range b.in.net.PublicIPs {
		if !pip.PrivateIP.IsValid() {
			continue
		}
		pre = append(pre, []string{"-d", pip.IP.String() + "/32", "-j", "DNAT", "--to-destination", pip.PrivateIP.String()})
		post = append(post, []string{"-o", internetLinkNm, "-s", pip.PrivateIP.String() + "/32", "-j", "SNAT", "--to-source", pip.IP.String()})
	}
	post = append(post, b.storageNAT()...)
	c := b.chain("nat", "PRE")
	c.rules = pre
	b.p.hooks["nat/NP-PRE"] = c.name
	c = b.chain("nat", "POST")
	c.rules = post
	b.p.hooks["nat/NP-POST"] = c.name
}

func frontendOf(lb armsim.LBState, name string) *armsim.LBFrontendState {
	for i := range lb.Frontends {
		if strings.EqualFold(lb.Frontends[i].Name, name) {
			return &lb.Frontends[i]
		}
	}
	return nil
}

// healthyBackends returns the pool's members that pass the rule's probe (all of them
// when the rule has none) and registers the probe targets.
func (b *policyBuilder) healthyBackends(lb armsim.LBState, r armsim.LBRule) []netip.Addr {
	members := lb.Pools[lower(r.Pool)]
	var probe *armsim.LBProbe
	for i := range lb.Probes {
		if strings.EqualFold(lb.Probes[i].Name, r.Probe) {
			probe = &lb.Probes[i]
		}
	}
	if probe == nil {
		return members
	}
	var out []netip.Addr
	for _, m := range members {
		t := probeTarget{LB: lb.ID, Probe: lower(probe.Name), Backend: m, Protocol: probe.Protocol, Port: probe.Port, Path: probe.RequestPath}
		b.addProbe(t)
		if healthy, probed := b.in.health[t.key()]; probed && healthy {
			out = append(out, m)
		}
	}
	return out
}

func (b *policyBuilder) addProbe(t probeTarget) {
	for _, x := range b.p.probes {
		if x.key() == t.key() {
			return
		}
	}
	b.p.probes = append(b.p.probes, t)
}

// lbMatches returns the protocol and port fragments of a rule (HA ports: none).
func lbMatches(r armsim.LBRule) [][]string {
	switch r.Protocol {
	case "Tcp", "Udp":
		return [][]string{{"-p", strings.ToLower(r.Protocol), "--dport", fmt.Sprint(r.FrontendPort)}}
	}
	return [][]string{nil}
}

// spreadRules sends each new flow to one backend at random, as kube-proxy does: rule i
// of n matches with probability 1/(n-i). With no healthy backend nothing is translated,
// so the flow finds no listener and fails, as a flow to a frontend with no healthy
// backend does in Azure.
func spreadRules(backends []netip.Addr, r armsim.LBRule) [][]string {
	var out [][]string
	for i, be := range backends {
		to := be.String()
		if r.BackendPort != 0 && r.Protocol != "All" {
			to = fmt.Sprintf("%s:%d", be, r.BackendPort)
		}
		rule := []string{}
		if r.Protocol == "Tcp" || r.Protocol == "Udp" {
			// DNAT to a port needs the protocol in the same rule.
			rule = append(rule, "-p", strings.ToLower(r.Protocol))
		}
		if left := len(backends) - i; left > 1 {
			rule = append(rule, "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%.6f", 1/float64(left)))
		}
		out = append(out, append(rule, "-j", "DNAT", "--to-destination", to))
	}
	return out
}
