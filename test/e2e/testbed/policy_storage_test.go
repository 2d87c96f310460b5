package testbed

import (
	"slices"
	"testing"

	"github.com/nicpool/nicpool/internal/armsim"
)

// TestPolicyStorage checks the paths to the storage site: a subnet with the
// Microsoft.Storage endpoint goes untranslated, a public IP's owner as its public IP,
// the rest of the VNet through default outbound access; no storage rules without the
// storage site.
func TestPolicyStorage(t *testing.T) {
	topo := armsim.GenerateTopology("00000000-0000-0000-0000-000000000001", "rg", "10.240.0.0/16", "10.240.0.0/24", 1)
	v := &topo.VNets[0]
	v.AddressSpace = append(v.AddressSpace, "10.242.0.0/24")
	v.Subnets[0].ServiceEndpoints = []string{armsim.ServiceStorage}
	v.Subnets = append(v.Subnets, armsim.SubnetSpec{Name: "b", CIDR: "10.242.0.0/24", ServiceEndpoints: []string{"Microsoft.Sql"}})
	topo.PublicIPAddresses = []armsim.ResourceSpec{{ResourceGroup: "rg", Name: "pip"}}
	topo.NICs[0].PublicIP = "pip"
	sim, err := armsim.New(armsim.Options{Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	snap := sim.Snapshot()
	pub := snap.Network.PublicIPs[0]
	for _, storage := range []bool{true, false} {
		p := buildPolicy(policyInput{net: snap.Network, nics: snap.NICs, links: map[string]string{}, gen: 1, storage: storage})
		fwd, post := chainRules(p, "-FWD"), chainRules(p, "-POST")
		want := map[string]bool{
			"-o f-storage -s 10.240.0.0/24 -m comment --comment service endpoint -j ACCEPT":            true,
			"-o f-storage -s 10.240.0.0/24 -j RETURN":                                                  true,
			"-o f-storage -s " + pub.PrivateIP.String() + "/32 -j SNAT --to-source " + pub.IP.String(): true,
			"-o f-storage -s 10.240.0.0/16 -j SNAT --to-source " + DefaultOutboundIP:                   true,
			"-o f-storage -s 10.242.0.0/24 -j SNAT --to-source " + DefaultOutboundIP:                   true,
		}
		for rule := range want {
			if got := slices.Contains(fwd, rule) || slices.Contains(post, rule); got != storage {
				t.Errorf("storage site %v: rule %q present %v\nforward %q\npost %q", storage, rule, got, fwd, post)
			}
		}
		// The subnet with another service's endpoint gets no storage path.
		for _, r := range append(fwd, post...) {
			if r == "-o f-storage -s 10.242.0.0/24 -j RETURN" || r == "-o f-storage -s 10.242.0.0/24 -m comment --comment service endpoint -j ACCEPT" {
				t.Errorf("subnet b without the storage endpoint has a service endpoint path: %q", r)
			}
		}
		// Over the endpoint, no translation: the RETURN precedes the public IP's SNAT.
		if storage {
			ret := slices.Index(post, "-o f-storage -s 10.240.0.0/24 -j RETURN")
			snat := slices.Index(post, "-o f-storage -s "+pub.PrivateIP.String()+"/32 -j SNAT --to-source "+pub.IP.String())
			if ret < 0 || snat < 0 || ret > snat {
				t.Errorf("endpoint RETURN at %d, public IP SNAT at %d: %q", ret, snat, post)
			}
		}
	}
}
