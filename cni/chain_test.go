package cni

import (
	"context"
	"slices"
	"testing"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
)

func TestChainedWithPortmapAndBandwidth(t *testing.T) {
	tb := newTestbed(t, testPoolA)
	for _, p := range []string{"portmap", "bandwidth"} {
		if _, err := tb.cni.GetVersionInfo(context.Background(), p); err != nil {
			t.Skipf("reference plugin %s missing (apt-get install containernetworking-plugins): %v", p, err)
		}
	}
	// Debian's reference plugins speak up to 1.0.0.
	list := tb.confList("1.0.0",
		map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}},
	)
	pod := newNS(t)
	rt := runtimeConf("ctr-chain", pod)
	rt.CapabilityArgs = map[string]any{
		"portMappings": []map[string]any{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}},
		"bandwidth":    map[string]any{"ingressRate": 1000000, "ingressBurst": 100000, "egressRate": 1000000, "egressBurst": 100000},
	}
	res, err := tb.add(list, rt)
	if err != nil {
		t.Fatalf("chained ADD: %v", err)
	}
	r := asCurrent(t, res)
	if len(r.IPs) != 1 || r.IPs[0].Address.IP.String() != testPoolA {
		t.Errorf("chained result ips %v, want %s", r.IPs, testPoolA)
	}
	ifbs := tb.linksOfType("ifb")
	if len(ifbs) != 1 {
		t.Errorf("bandwidth plugin made ifb devices %v, want one (it found nicpool's host veth in prevResult)", ifbs)
	}
	tb.inNode(func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		ok, err := ipt.ChainExists("nat", "CNI-HOSTPORT-DNAT")
		if err == nil && !ok {
			t.Errorf("portmap did not program CNI-HOSTPORT-DNAT from nicpool's prevResult")
		}
		return err
	})
	// Debian's portmap 1.1.1 fails CHECK on IPv4-only pods (it also checks
	// ip6tables; fixed upstream later), so CHECK runs nicpool and bandwidth
	// against the cached result of the whole chain.
	checkList := tb.confList("1.0.0", map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}})
	if err := tb.check(checkList, rt); err != nil {
		t.Errorf("chained CHECK: %v", err)
	}
	if err := tb.del(list, rt); err != nil {
		t.Fatalf("chained DEL: %v", err)
	}
	if left := append(tb.npLinks(), tb.linksOfType("ifb")...); len(left) != 0 {
		t.Errorf("links %v left after chained DEL", left)
	}
	if len(tb.agent.Held()) != 0 {
		t.Errorf("allocation left after chained DEL")
	}
}

func (tb *testbed) linksOfType(kind string) []string {
	tb.t.Helper()
	var names []string
	tb.inNode(func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if l.Type() == kind {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	slices.Sort(names)
	return names
}
