package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/internal/armsim"
)

// User-defined routes: each subnet with a route table gets a routing table in the fabric,
// looked up (by a rule matching the link of each VM in the subnet) before the main table,
// so VMs and the pods behind them alike meet them. Azure picks the longest prefix among system and user routes, a
// user route winning a tie; "throw" routes for the VNet's own and connected prefixes give
// the lookup back to the main table where those are more specific than every user route.
const (
	udrTableBase    = 100
	udrRulePriority = 1000
	unixRTNThrow    = 9 // RTN_THROW
)

// udrState is the applied user-defined routing: a description per table and of the rules.
type udrState struct {
	keys  map[int]string // table -> description of its routes
	rules string         // description of the rules
}

// syncUDRs installs the route tables of the subnets and sends packets arriving from each
// VM whose NIC is in such a subnet through its table (Azure applies the route table of
// the subnet of the NIC a packet leaves, so a virtual appliance's forwarded packets meet
// its own subnet's routes). linkSubnet maps fabric links to their NIC's subnet ID; holder
// maps addresses of IP configurations to the fabric link of their VM (virtual
// appliances). Runs in the fabric namespace; requires f.policyMu.
func (f *fabric) syncUDRs(net armsim.NetworkState, linkSubnet map[string]string, holder map[netip.Addr]string) error {
	want := map[int][]netlink.Route{}
	keys := map[int]string{}
	tableOf := map[string]int{}
	for i, sn := range net.Subnets {
		routes, ok := net.RouteTables[sn.RouteTableID]
		if sn.RouteTableID == "" || !ok {
			continue
		}
		table := udrTableBase + i
		rs, key, err := udrRoutes(table, routes, systemPrefixes(net, sn.VNetID), holder)
		if err != nil {
			return err
		}
		want[table], keys[table], tableOf[sn.ID] = rs, key, table
	}
	for table := range f.udr.keys {
		if _, ok := want[table]; !ok {
			if err := flushTable(table); err != nil {
				return err
			}
			delete(f.udr.keys, table)
		}
	}
	for table, rs := range want {
		if f.udr.keys[table] == keys[table] {
			continue
		}
		if err := flushTable(table); err != nil {
			return err
		}
		for i := range rs {
			if err := netlink.RouteReplace(&rs[i]); err != nil {
				return fmt.Errorf("user route %s in table %d: %w", rs[i].Dst, table, err)
			}
		}
		f.udr.keys[table] = keys[table]
	}
	var rules []string
	for link, sn := range linkSubnet {
		if t, ok := tableOf[sn]; ok {
			rules = append(rules, fmt.Sprintf("%s>%d", link, t))
		}
	}
	sort.Strings(rules)
	if key := strings.Join(rules, ","); key != f.udr.rules {
		if err := replaceUDRRules(rules); err != nil {
			return err
		}
		f.udr.rules = key
	}
	return nil
}

// replaceUDRRules replaces the fabric's user-route rules with rules ("link>table").
func replaceUDRRules(rules []string) error {
	old, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list rules: %w", err)
	}
	for i := range old {
		if old[i].Priority == udrRulePriority {
			if err := netlink.RuleDel(&old[i]); err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("delete rule of table %d: %w", old[i].Table, err)
			}
		}
	}
	for _, r := range rules {
		link, table, _ := strings.Cut(r, ">")
		rule := netlink.NewRule()
		rule.IifName, rule.Priority = link, udrRulePriority
		if _, err := fmt.Sscan(table, &rule.Table); err != nil {
			return fmt.Errorf("parse table of %q: %w", r, err)
		}
		if err := netlink.RuleAdd(rule); err != nil {
			return fmt.Errorf("rule %s: %w", r, err)
		}
	}
	return nil
}

// systemPrefixes are the VNet's address space and connected prefixes.
func systemPrefixes(net armsim.NetworkState, vnetID string) []netip.Prefix {
	for _, v := range net.VNets {
		if v.ID == vnetID {
			return append(append([]netip.Prefix{}, v.AddressSpace...), v.Connected...)
		}
	}
	return nil
}

func udrRoutes(table int, routes []armsim.UserRoute, system []netip.Prefix, holder map[netip.Addr]string) ([]netlink.Route, string, error) {
	var out []netlink.Route
	var desc []string
	user := map[netip.Prefix]bool{}
	for _, r := range routes {
		user[r.AddressPrefix] = true
		rt := netlink.Route{Dst: prefixNet(r.AddressPrefix), Table: table}
		switch r.NextHopType {
		case armsim.NextHopNone:
			rt.Type = unixRTNBlackhole
		case armsim.NextHopVirtualAppliance:
			link := holder[r.NextHopIP]
			if link == "" {
				// An appliance address no NIC holds: Azure drops the traffic.
				rt.Type = unixRTNBlackhole
				break
			}
			l, err := netlink.LinkByName(link)
			if err != nil {
				return nil, "", fmt.Errorf("find %s: %w", link, err)
			}
			rt.Gw, rt.LinkIndex, rt.Flags = r.NextHopIP.AsSlice(), l.Attrs().Index, int(netlink.FLAG_ONLINK)
			desc = append(desc, link)
		case armsim.NextHopInternet:
			l, err := netlink.LinkByName(internetLinkNm)
			if err != nil {
				return nil, "", fmt.Errorf("find %s: %w", internetLinkNm, err)
			}
			rt.LinkIndex, rt.Scope = l.Attrs().Index, netlink.SCOPE_LINK
		default: // VnetLocal, VirtualNetworkGateway: the system routes decide
			rt.Type = unixRTNThrow
		}
		out = append(out, rt)
		desc = append(desc, fmt.Sprintf("%s>%s:%s", r.AddressPrefix, r.NextHopType, r.NextHopIP))
	}
	for _, p := range system {
		if !user[p] {
			out = append(out, netlink.Route{Dst: prefixNet(p), Table: table, Type: unixRTNThrow})
			desc = append(desc, "throw "+p.String())
		}
	}
	sort.Strings(desc)
	return out, strings.Join(desc, ","), nil
}

// flushTable removes a table's routes.
func flushTable(table int) error {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list table %d: %w", table, err)
	}
	for i := range routes {
		if err := netlink.RouteDel(&routes[i]); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("delete route %s of table %d: %w", routes[i].Dst, table, err)
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
}
