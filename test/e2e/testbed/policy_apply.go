package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
)

// hookChains are the stable chains the fabric's built-in chains jump to; each holds a
// single rule jumping to the current generation's chain.
var hookChains = []struct{ table, parent, chain string }{
	{"filter", "FORWARD", "NP-FWD"},
	{"filter", "OUTPUT", "NP-OUT"},
	{"nat", "PREROUTING", "NP-PRE"},
	{"nat", "POSTROUTING", "NP-POST"},
}

// installHooks creates the stable hook chains (each first returning at once) and jumps
// to them first thing in the built-in chains, and puts the probe source on lo. Runs in
// the fabric namespace.
func installHooks() error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables in fabric: %w", err)
	}
	for _, h := range hookChains {
		if err := ipt.NewChain(h.table, h.chain); err != nil {
			return fmt.Errorf("create %s/%s: %w", h.table, h.chain, err)
		}
		if err := ipt.Append(h.table, h.chain, "-j", "RETURN"); err != nil {
			return fmt.Errorf("fill %s/%s: %w", h.table, h.chain, err)
		}
		if err := ipt.Insert(h.table, h.parent, 1, "-j", h.chain); err != nil {
			return fmt.Errorf("hook %s/%s: %w", h.table, h.chain, err)
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	// Forwarded packets leave towards the VMs with sources the fabric's strict reverse
	// path check would refuse (a virtual appliance forwards others' traffic).
	for _, k := range []string{"all", "default", "lo"} {
		if err := writeSysctl("net/ipv4/conf/"+k+"/rp_filter", "0"); err != nil {
			return err
		}
	}
	return addAddr(lo, AzureLBProbeIP+"/32")
}

// applyPolicy switches the fabric to p unless it equals the applied one: it creates p's
// chains, points each hook at them (one atomic rule replacement each) and deletes the
// previous generation. Runs in the fabric namespace; requires f.policyMu.
func (f *fabric) applyPolicy(p *policy) error {
	if f.policy != nil && samePolicy(f.policy, p) {
		return nil
	}
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables in fabric: %w", err)
	}
	if err := fillChains(ipt, p); err != nil {
		// The hooks still jump to the applied generation: drop this one.
		return errors.Join(err, deleteChains(ipt, p))
	}
	if err := f.syncFrontends(p.frontends); err != nil {
		return errors.Join(err, deleteChains(ipt, p))
	}
	for _, h := range hookChains {
		if err := ipt.Replace(h.table, h.chain, 1, "-j", p.hooks[h.table+"/"+h.chain]); err != nil {
			return fmt.Errorf("switch %s/%s: %w", h.table, h.chain, err)
		}
	}
	old := f.policy
	f.policy = p
	if old == nil {
		return nil
	}
	return deleteChains(ipt, old)
}

// fillChains creates p's chains and their rules.
func fillChains(ipt *iptables.IPTables, p *policy) error {
	for _, c := range p.chains {
		if err := ipt.NewChain(c.table, c.name); err != nil {
			return fmt.Errorf("create chain %s/%s: %w", c.table, c.name, err)
		}
	}
	for _, c := range p.chains {
		for _, r := range c.rules {
			if err := ipt.Append(c.table, c.name, r...); err != nil {
				return fmt.Errorf("rule %v in %s/%s: %w", r, c.table, c.name, err)
			}
		}
	}
	return nil
}

// deleteChains removes p's chains (those that exist), once nothing jumps to them.
func deleteChains(ipt *iptables.IPTables, p *policy) error {
	for _, c := range p.chains {
		if ok, _ := ipt.ChainExists(c.table, c.name); !ok {
			continue
		}
		if err := ipt.ClearChain(c.table, c.name); err != nil {
			return fmt.Errorf("clear chain %s/%s: %w", c.table, c.name, err)
		}
	}
	for _, c := range p.chains {
		if ok, _ := ipt.ChainExists(c.table, c.name); !ok {
			continue
		}
		if err := ipt.DeleteChain(c.table, c.name); err != nil {
			return fmt.Errorf("delete chain %s/%s: %w", c.table, c.name, err)
		}
	}
	return nil
}

// samePolicy compares two generations ignoring their chain-name prefixes.
func samePolicy(a, b *policy) bool {
	strip := func(p *policy) any {
		gen := func(s string) string {
			if i := strings.Index(s, "-"); i > 0 && strings.HasPrefix(s, "NP") {
				return "NP*" + s[i:]
			}
			return s
		}
		var chains []chainSpec
		for _, c := range p.chains {
			cc := chainSpec{table: c.table, name: gen(c.name)}
			for _, r := range c.rules {
				rr := make([]string, len(r))
				for i, x := range r {
					rr[i] = gen(x)
				}
				cc.rules = append(cc.rules, rr)
			}
			chains = append(chains, cc)
		}
		return []any{chains, p.frontends}
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// syncFrontends keeps exactly the internal frontend IPs on the fabric's loopback, so the
// fabric answers ARP for them (as for the VNet gateway). Requires f.policyMu.
func (f *fabric) syncFrontends(want []netip.Addr) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	keep := map[netip.Addr]bool{}
	for _, a := range want {
		keep[a] = true
		if f.frontends[a] {
			continue
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return fmt.Errorf("add frontend %s to lo: %w", a, err)
		}
		f.frontends[a] = true
	}
	for a := range f.frontends {
		if keep[a] {
			continue
		}
		if err := netlink.AddrDel(lo, &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return fmt.Errorf("remove frontend %s from lo: %w", a, err)
		}
		delete(f.frontends, a)
	}
	return nil
}

// enforce recomputes and applies the policy and routes for the last snapshot with the
// current health. Safe for concurrent use.
func (f *fabric) enforce() error {
	f.policyMu.Lock()
	defer f.policyMu.Unlock()
	f.mu.Lock()
	snap, health := f.lastSnap, make(map[string]bool, len(f.health))
	if snap == nil {
		f.mu.Unlock()
		return nil
	}
	for k, v := range f.health {
		health[k] = v
	}
	links, linkSubnet := map[string]string{}, map[string]string{}
	for _, n := range snap.NICs {
		if vm := f.vms[lower(n.VMID)]; vm != nil {
			links[lower(n.ID)] = vm.fabricLink
			linkSubnet[vm.fabricLink] = lower(n.SubnetID)
		}
	}
	holder := map[netip.Addr]string{}
	for ip, vm := range f.applied {
		holder[netip.MustParseAddr(ip)] = vm.fabricLink
	}
	f.mu.Unlock()
	f.gen++
	p := buildPolicy(policyInput{net: snap.Network, nics: snap.NICs, links: links, health: health, gen: f.gen, storage: f.storage})
	err := f.ns.Do(func(ns.NetNS) error {
		if err := f.applyPolicy(p); err != nil {
			return err
		}
		return f.syncUDRs(snap.Network, linkSubnet, holder)
	})
	if err != nil {
		return fmt.Errorf("enforce armsim version %d: %w", snap.Version, err)
	}
	f.setProbes(p.probes)
	f.markEnforced(snap.Version)
	return nil
}
