package testbed

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nicpool/nicpool/internal/armsim"
)

// policyTopology has a subnet NSG with an ASG rule, an internal load balancer with a
// probe, and a public IP on vm-1.
const policyTopology = `
subscriptionId: 00000000-0000-0000-0000-000000000001
vnets:
  - {resourceGroup: rg, name: v, addressSpace: [10.240.0.0/16], connectedPrefixes: [192.168.50.0/24],
     subnets: [{name: nodes, cidr: 10.240.0.0/16, networkSecurityGroup: nsg}]}
applicationSecurityGroups: [{resourceGroup: rg, name: web}]
publicIPAddresses: [{resourceGroup: rg, name: pip}]
networkSecurityGroups:
  - resourceGroup: rg
    name: nsg
    rules:
      - {name: deny-all-onprem, priority: 200, access: Deny, direction: Inbound, protocol: "*", sourceAddressPrefixes: [192.168.50.0/24]}
      - {name: web, priority: 100, access: Allow, direction: Inbound, protocol: Tcp, sourceAddressPrefixes: [Internet, 192.168.50.0/24],
         destinationPortRanges: ["80", "8000-8080"], destinationApplicationSecurityGroups: [web]}
loadBalancers:
  - resourceGroup: rg
    name: lb
    frontends: [{name: fe, vnet: v, subnet: nodes, privateIP: 10.240.1.100}]
    backendPools: [pool]
    probes: [{name: p, protocol: Tcp, port: 8080}]
    rules: [{name: r, frontend: fe, backendPool: pool, probe: p, protocol: Tcp, frontendPort: 80, backendPort: 8080}]
nics:
  - {resourceGroup: rg, name: vm-0-nic, vmName: vm-0, vnet: v, subnet: nodes, primaryIP: 10.240.0.10,
     applicationSecurityGroups: [web], loadBalancerBackendPools: [lb/pool]}
  - {resourceGroup: rg, name: vm-1-nic, vmName: vm-1, vnet: v, subnet: nodes, primaryIP: 10.240.0.11,
     loadBalancerBackendPools: [lb/pool], publicIP: pip}
`

func policyFor(t *testing.T, health map[string]bool) (*policy, armsim.Snapshot) {
	t.Helper()
	topo, err := armsim.ParseTopology([]byte(policyTopology))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := armsim.New(armsim.Options{Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	snap := sim.Snapshot()
	links := map[string]string{}
	for i, n := range snap.NICs {
		links[lower(n.ID)] = "f-vm" + string(rune('0'+i))
	}
	return buildPolicy(policyInput{net: snap.Network, nics: snap.NICs, links: links, health: health, gen: 7}), snap
}

func chainRules(p *policy, suffix string) []string {
	for _, c := range p.chains {
		if strings.HasSuffix(c.name, suffix) {
			var out []string
			for _, r := range c.rules {
				out = append(out, strings.Join(r, " "))
			}
			return out
		}
	}
	return nil
}

// TestPolicyNSG checks how security rules become iptables rules: priority order, tags
// as marks, ASGs as member addresses, ports per range, defaults last.
func TestPolicyNSG(t *testing.T) {
	p, _ := policyFor(t, nil)
	in := chainRules(p, "-G0I")
	if len(in) == 0 {
		t.Fatalf("no inbound chain for the subnet's nsg in %+v", p.chains)
	}
	want := []string{
		// web (priority 100): 2 sources x 1 ASG member x 2 port ranges, before the deny.
		"-p tcp -m mark ! --mark 0x10000000/0x10000000 -d 10.240.0.10/32 --dport 80:80 -m comment --comment web -j RETURN",
		"-p tcp -m mark ! --mark 0x10000000/0x10000000 -d 10.240.0.10/32 --dport 8000:8080 -m comment --comment web -j RETURN",
		"-p tcp -s 192.168.50.0/24 -d 10.240.0.10/32 --dport 80:80 -m comment --comment web -j RETURN",
		"-p tcp -s 192.168.50.0/24 -d 10.240.0.10/32 --dport 8000:8080 -m comment --comment web -j RETURN",
		"-s 192.168.50.0/24 -m comment --comment deny-all-onprem -j DROP",
		"-m mark --mark 0x10000000/0x10000000 -m mark --mark 0x20000000/0x20000000 -m comment --comment AllowVnetInBound -j RETURN",
		"-s 168.63.129.16/32 -m comment --comment AllowAzureLoadBalancerInBound -j RETURN",
		"-m comment --comment DenyAllInBound -j DROP",
	}
	if strings.Join(in, "\n") != strings.Join(want, "\n") {
		t.Errorf("inbound chain:\n%s\nwant:\n%s", strings.Join(in, "\n"), strings.Join(want, "\n"))
	}
	fwd := strings.Join(chainRules(p, "-FWD"), "\n")
	for _, w := range []string{"-d 10.240.0.0/16 -j NP7-G0I", "-s 10.240.0.0/16 -j NP7-G0O", "-s 192.168.50.0/24 -j MARK --or-mark 0x10000000"} {
		if !strings.Contains(fwd, w) {
			t.Errorf("forward chain lacks %q:\n%s", w, fwd)
		}
	}
}

// TestPolicyLoadBalancer checks that only healthy backends receive new flows and that
// backends not yet probed receive none.
func TestPolicyLoadBalancer(t *testing.T) {
	p, snap := policyFor(t, nil)
	if got := chainRules(p, "-L0R0"); len(got) != 0 {
		t.Errorf("backends not yet probed get flows: %v", got)
	}
	if len(p.probes) != 2 || p.frontends[0] != netip.MustParseAddr("10.240.1.100") {
		t.Fatalf("probes %v, frontends %v", p.probes, p.frontends)
	}
	lbID := snap.Network.LoadBalancers[0].ID
	health := map[string]bool{lbID + "|p|10.240.0.10": true, lbID + "|p|10.240.0.11": false}
	p, _ = policyFor(t, health)
	got := chainRules(p, "-L0R0")
	if len(got) != 1 || got[0] != "-p tcp -j DNAT --to-destination 10.240.0.10:8080" {
		t.Errorf("with one healthy backend: %v", got)
	}
	health[lbID+"|p|10.240.0.11"] = true
	p, _ = policyFor(t, health)
	got = chainRules(p, "-L0R0")
	if len(got) != 2 || !strings.Contains(got[0], "--probability 0.500000") {
		t.Errorf("with two healthy backends: %v", got)
	}
	pre := strings.Join(chainRules(p, "-PRE"), "\n")
	if !strings.Contains(pre, "-d 10.240.1.100/32 -p tcp --dport 80 -j NP7-L0R0") {
		t.Errorf("prerouting lacks the frontend's rule:\n%s", pre)
	}
	var pub string
	for _, x := range snap.Network.PublicIPs {
		pub = x.IP.String()
	}
	if !strings.Contains(pre, "-d "+pub+"/32 -j DNAT --to-destination 10.240.0.11") ||
		!strings.Contains(strings.Join(chainRules(p, "-POST"), "\n"), "-s 10.240.0.11/32 -j SNAT --to-source "+pub) {
		t.Errorf("public ip %s is not mapped 1:1 to 10.240.0.11:\n%s\n%v", pub, pre, chainRules(p, "-POST"))
	}
}
