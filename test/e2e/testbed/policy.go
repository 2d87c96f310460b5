package testbed

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/nicpool/nicpool/internal/armsim"
)

// The fabric enforces armsim's NSGs, load balancers and public IPs with iptables rules in
// its own namespace, rebuilt from each snapshot as one generation of chains and switched
// in by replacing one jump per hook, so a packet sees either the old rules or the new.
//
// Service tags are packet marks set at the top of the forward chain: srcVNetMark when the
// source is in the VNet's address space or a connected prefix (VirtualNetwork), dstVNetMark
// likewise for the destination; Internet is "not VirtualNetwork". Marks do not cross
// namespaces (the kernel scrubs them on a veth), so neither VMs nor pods see them.
const (
	srcVNetMark = "0x10000000"
	dstVNetMark = "0x20000000"
	tagMarks    = "0x30000000"
	// AzureLBProbeIP is the address Azure's load balancer probes come from (the
	// AzureLoadBalancer service tag); the fabric probes backends from it.
	AzureLBProbeIP = "168.63.129.16"
)

// chainSpec is one iptables chain of a generation: its table and rules in order.
type chainSpec struct {
	table, name string
	rules       [][]string
}

// policy is the complete rule set for one state of armsim and of the backends' health.
type policy struct {
	chains []chainSpec
	// hooks maps a stable hook chain ("filter/NP-FWD") to the chain of this generation
	// it jumps to.
	hooks map[string]string
	// frontends are internal load balancer frontend IPs the fabric must answer ARP for.
	frontends []netip.Addr
	// probes are the health probes to run.
	probes []probeTarget
}

// probeTarget is one backend to probe for one probe of one load balancer.
type probeTarget struct {
	LB, Probe string
	Backend   netip.Addr
	Protocol  string // Tcp, Http, Https
	Port      int32
	Path      string
}

func (p probeTarget) key() string { return p.LB + "|" + p.Probe + "|" + p.Backend.String() }

// policyInput is everything a policy is computed from.
type policyInput struct {
	net    armsim.NetworkState
	nics   []armsim.NICState
	links  map[string]string // lower-case NIC ID -> fabric link of its VM
	health map[string]bool   // probeTarget.key() -> healthy (absent: not yet probed, no flows)
	gen    int
	// storage is set when the testbed has the storage site (Config.Storage).
	storage bool
}

// buildPolicy computes the rule set for in; it is a pure function so tests can read it.
func buildPolicy(in policyInput) *policy {
	b := &policyBuilder{in: in, p: &policy{hooks: map[string]string{}}, prefix: "NP" + strconv.Itoa(in.gen) + "-"}
	b.build()
	return b.p
}

type policyBuilder struct {
	in     policyInput
	p      *policy
	prefix string
	asgIPs map[string][]netip.Addr // lower ASG ID -> member IPs
	nsgIdx map[string]int
}

func (b *policyBuilder) chain(table, name string) *chainSpec {
	b.p.chains = append(b.p.chains, chainSpec{table: table, name: b.prefix + name})
	return &b.p.chains[len(b.p.chains)-1]
}

func (b *policyBuilder) build() {
	b.asgIPs = map[string][]netip.Addr{}
	for _, n := range b.in.nics {
		for _, c := range n.IPConfigs {
			for _, a := range c.ASGs {
				b.asgIPs[a] = append(b.asgIPs[a], netip.MustParseAddr(c.IP))
			}
		}
	}
	b.nsgIdx = map[string]int{}
	var nsgIDs []string
	for id := range b.in.net.NSGs {
		nsgIDs = append(nsgIDs, id)
	}
	sort.Strings(nsgIDs)
	for i, id := range nsgIDs {
		b.nsgIdx[id] = i
	}
	// Rules are appended to chains by index, so build the forward chain's rules last.
	fwdRules, outRules := b.filterHooks(nsgIDs)
	fwd := b.chain("filter", "FWD")
	fwd.rules = fwdRules
	b.p.hooks["filter/NP-FWD"] = fwd.name
	out := b.chain("filter", "OUT")
	out.rules = outRules
	b.p.hooks["filter/NP-OUT"] = out.name
	b.natHooks()
}

// filterHooks builds the NSG chains and returns the forward and output chains' rules.
func (b *policyBuilder) filterHooks(nsgIDs []string) (fwd, out [][]string) {
	for _, id := range nsgIDs {
		for _, dir := range []string{"Inbound", "Outbound"} {
			c := b.chain("filter", b.nsgChain(id, dir))
			for _, r := range b.in.net.NSGs[id] {
				if r.Direction == dir {
					c.rules = append(c.rules, b.ruleSpecs(r)...)
				}
			}
		}
	}
	established := []string{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"}
	fwd = append(fwd, established, []string{"-j", "MARK", "--set-xmark", "0x0/" + tagMarks})
	for _, v := range b.in.net.VNets {
		for _, p := range append(append([]netip.Prefix{}, v.AddressSpace...), v.Connected...) {
			fwd = append(fwd,
				[]string{"-s", p.String(), "-j", "MARK", "--or-mark", srcVNetMark},
				[]string{"-d", p.String(), "-j", "MARK", "--or-mark", dstVNetMark})
		}
	}
	outbound, inbound := b.dispatch()
	fwd = append(fwd, outbound...)
	fwd = append(fwd, inbound...)
	// Traffic the NSGs let through that the internet rules after this chain would drop:
	// connections to public IPs and public frontends (DNATed), and sources with a public IP.
	fwd = append(fwd, []string{"-i", internetLinkNm, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"})
	for _, pip := range b.in.net.PublicIPs {
		if pip.PrivateIP.IsValid() {
			fwd = append(fwd, []string{"-o", internetLinkNm, "-s", pip.PrivateIP.String() + "/32", "-j", "ACCEPT"})
		}
	}
	fwd = append(fwd, b.storagePaths()...)
	// The fabric's own probes meet the backends' inbound rules too.
	out = append(out, established, []string{"-j", "MARK", "--set-xmark", "0x0/" + tagMarks})
	out = append(out, inbound...)
	return fwd, out
}

// dispatch sends a packet through the NSGs on its path: outbound, the source NIC's then
// its subnet's; inbound, the destination subnet's then its NIC's, as Azure evaluates them.
// NICs are matched by the fabric link of their VM, subnets by prefix.
func (b *policyBuilder) dispatch() (outbound, inbound [][]string) {
	var nicOut, nicIn [][]string
	seenLink := map[string]bool{}
	for _, n := range b.in.nics {
		link := b.in.links[lower(n.ID)]
		if n.NSGID == "" || link == "" || seenLink[link] {
			continue
		}
		if _, ok := b.in.net.NSGs[n.NSGID]; !ok {
			continue
		}
		seenLink[link] = true
		nicOut = append(nicOut, []string{"-i", link, "-j", b.prefix + b.nsgChain(n.NSGID, "Outbound")})
		nicIn = append(nicIn, []string{"-o", link, "-j", b.prefix + b.nsgChain(n.NSGID, "Inbound")})
	}
	var subOut, subIn [][]string
	for _, sn := range b.in.net.Subnets {
		if _, ok := b.in.net.NSGs[sn.NSGID]; sn.NSGID == "" || !ok {
			continue
		}
		subOut = append(subOut, []string{"-s", sn.Prefix.String(), "-j", b.prefix + b.nsgChain(sn.NSGID, "Outbound")})
		subIn = append(subIn, []string{"-d", sn.Prefix.String(), "-j", b.prefix + b.nsgChain(sn.NSGID, "Inbound")})
	}
	return append(nicOut, subOut...), append(subIn, nicIn...)
}

func (b *policyBuilder) nsgChain(id, dir string) string {
	return fmt.Sprintf("G%d%c", b.nsgIdx[id], dir[0])
}

// ruleSpecs expands one security rule into iptables rules (prefixes x ports x protocols),
// all with the rule's action: Allow returns from the NSG chain, Deny drops.
func (b *policyBuilder) ruleSpecs(r armsim.SecurityRule) [][]string {
	action := []string{"-j", "RETURN"}
	if r.Access == "Deny" {
		action = []string{"-j", "DROP"}
	}
	srcs := b.selectors("-s", srcVNetMark, r.SourcePrefixes, r.SourceASGs)
	dsts := b.selectors("-d", dstVNetMark, r.DestPrefixes, r.DestinationASGs)
	var out [][]string
	for _, proto := range protocols(r) {
		for _, s := range srcs {
			for _, d := range dsts {
				for _, sp := range portMatches(proto, "--sport", r.SourcePorts) {
					for _, dp := range portMatches(proto, "--dport", r.DestinationPorts) {
						spec := append([]string{}, proto...)
						spec = append(spec, s...)
						spec = append(spec, d...)
						spec = append(spec, sp...)
						spec = append(spec, dp...)
						spec = append(spec, "-m", "comment", "--comment", r.Name)
						out = append(out, append(spec, action...))
					}
				}
			}
		}
	}
	return out
}

// selectors turns prefixes (or ASGs) into match fragments; an empty ASG matches nothing.
func (b *policyBuilder) selectors(flag, mark string, prefixes, asgs []string) [][]string {
	if len(asgs) > 0 {
		var out [][]string
		for _, a := range asgs {
			for _, ip := range b.asgIPs[a] {
				out = append(out, []string{flag, ip.String() + "/32"})
			}
		}
		return out
	}
	var out [][]string
	for _, p := range prefixes {
		switch p {
		case "*":
			out = append(out, nil)
		case armsim.TagVirtualNetwork:
			out = append(out, []string{"-m", "mark", "--mark", mark + "/" + mark})
		case armsim.TagInternet:
			out = append(out, []string{"-m", "mark", "!", "--mark", mark + "/" + mark})
		case armsim.TagAzureLoadBalancer:
			out = append(out, []string{flag, AzureLBProbeIP + "/32"})
		default:
			pfx, err := armsim.ParsePrefixOrAddr(p)
			if err == nil {
				out = append(out, []string{flag, pfx.String()})
			}
		}
	}
	return out
}

// protocols returns the -p fragments of a rule: "*" with ports means TCP and UDP.
func protocols(r armsim.SecurityRule) [][]string {
	switch r.Protocol {
	case "Tcp", "Udp", "Icmp", "Esp", "Ah":
		return [][]string{{"-p", strings.ToLower(r.Protocol)}}
	}
	if allPorts(r.SourcePorts) && allPorts(r.DestinationPorts) {
		return [][]string{nil}
	}
	return [][]string{{"-p", "tcp"}, {"-p", "udp"}}
}

func allPorts(ports []string) bool {
	for _, p := range ports {
		if p == "*" {
			return true
		}
	}
	return len(ports) == 0
}

// portMatches returns one fragment per port range; ports apply to TCP and UDP only.
func portMatches(proto []string, flag string, ports []string) [][]string {
	if allPorts(ports) || len(proto) == 0 || (proto[1] != "tcp" && proto[1] != "udp") {
		return [][]string{nil}
	}
	var out [][]string
	for _, p := range ports {
		lo, hi, ok := armsim.ParsePortRange(p)
		if !ok {
			continue
		}
		out = append(out, []string{flag, fmt.Sprintf("%d:%d", lo, hi)})
	}
	return out
}
