package cni

import (
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// gatewayIP is the link-local next hop every pod routes through. It exists
// nowhere: a static neighbor entry maps it to the host veth's MAC, so the
// pod needs no ARP and the node needs no address on the veth.
var gatewayIP = net.IPv4(169, 254, 1, 1).To4()

// podLink is what ADD learns about the container end.
type podLink struct {
	Index int
	MAC   net.HardwareAddr
}

// hostPrefix is ip as a /32.
func hostPrefix(ip net.IP) *net.IPNet {
	return &net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)}
}

// defaultDst is 0.0.0.0/0.
func defaultDst() *net.IPNet {
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// configurePod runs inside the container namespace: it brings ifName up with
// ip/32, pins the gateway's MAC to the host veth and routes everything
// through the gateway.
func configurePod(ifName string, ip net.IP, hostMAC net.HardwareAddr) (podLink, error) {
	link, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return podLink{}, fmt.Errorf("look up %s in container: %w", ifName, err)
	}
	if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: hostPrefix(ip)}); err != nil && !errors.Is(err, unix.EEXIST) {
		return podLink{}, fmt.Errorf("add address %s/32 to %s: %w", ip, ifName, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return podLink{}, fmt.Errorf("set %s up: %w", ifName, err)
	}
	neigh := &netlink.Neigh{
		LinkIndex:    link.Attrs().Index,
		Family:       netlink.FAMILY_V4,
		State:        netlink.NUD_PERMANENT,
		IP:           gatewayIP,
		HardwareAddr: hostMAC,
	}
	if err := netlink.NeighSet(neigh); err != nil {
		return podLink{}, fmt.Errorf("add neighbor %s lladdr %s on %s: %w", gatewayIP, hostMAC, ifName, err)
	}
	gwRoute := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: hostPrefix(gatewayIP), Scope: netlink.SCOPE_LINK}
	if err := netlink.RouteReplace(gwRoute); err != nil {
		return podLink{}, fmt.Errorf("add route %s/32 dev %s: %w", gatewayIP, ifName, err)
	}
	defRoute := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: defaultDst(), Gw: gatewayIP, Scope: netlink.SCOPE_UNIVERSE}
	if err := netlink.RouteReplace(defRoute); err != nil {
		return podLink{}, fmt.Errorf("add default route via %s dev %s: %w", gatewayIP, ifName, err)
	}
	return podLink{Index: link.Attrs().Index, MAC: link.Attrs().HardwareAddr}, nil
}

// verifyPod runs inside the container namespace and checks what
// configurePod set up against the expected values.
func verifyPod(ifName string, mac string, ip net.IP, hostMAC net.HardwareAddr) error {
	link, err := netlinksafe.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("look up %s in container: %w", ifName, err)
	}
	if mac != "" && link.Attrs().HardwareAddr.String() != mac {
		return fmt.Errorf("%s has mac %s, want %s", ifName, link.Attrs().HardwareAddr, mac)
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("%s is down", ifName)
	}
	addrs, err := netlinksafe.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", ifName, err)
	}
	if !hasAddr(addrs, hostPrefix(ip)) {
		return fmt.Errorf("%s lacks address %s/32", ifName, ip)
	}
	if err := verifyGatewayNeighbor(link, hostMAC); err != nil {
		return err
	}
	routes, err := netlinksafe.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list routes of %s: %w", ifName, err)
	}
	var gw, def bool
	for _, r := range routes {
		switch {
		case r.Dst != nil && r.Dst.String() == hostPrefix(gatewayIP).String() && r.Scope == netlink.SCOPE_LINK:
			gw = true
		case (r.Dst == nil || r.Dst.String() == defaultDst().String()) && r.Gw.Equal(gatewayIP):
			def = true
		}
	}
	if !gw || !def {
		return fmt.Errorf("%s lacks route %s/32 scope link (found: %t) or default via %s (found: %t)", ifName, gatewayIP, gw, gatewayIP, def)
	}
	return nil
}

func hasAddr(addrs []netlink.Addr, want *net.IPNet) bool {
	for _, a := range addrs {
		if a.IPNet != nil && a.IPNet.String() == want.String() {
			return true
		}
	}
	return false
}

func verifyGatewayNeighbor(link netlink.Link, hostMAC net.HardwareAddr) error {
	neighs, err := netlink.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list neighbors of %s: %w", link.Attrs().Name, err)
	}
	for _, n := range neighs {
		if n.IP.Equal(gatewayIP) {
			if n.State&netlink.NUD_PERMANENT == 0 || n.HardwareAddr.String() != hostMAC.String() {
				return fmt.Errorf("neighbor %s on %s is %s state %#x, want %s permanent", gatewayIP, link.Attrs().Name, n.HardwareAddr, n.State, hostMAC)
			}
			return nil
		}
	}
	return fmt.Errorf("%s lacks neighbor entry for %s", link.Attrs().Name, gatewayIP)
}
