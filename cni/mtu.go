package cni

import (
	"fmt"
	"net"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// resolveMTU returns the configured MTU, or when it is 0 the MTU of the
// node's uplink: the interface holding the IPv4 default route, else the
// first up non-loopback interface. Pods must not exceed the uplink MTU or
// their large packets would be dropped in the VNet.
func resolveMTU(configured int) (int, error) {
	if configured != 0 {
		return configured, nil
	}
	routes, err := netlinksafe.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Dst: nil, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return 0, fmt.Errorf("list default routes: %w", err)
	}
	for _, r := range routes {
		if r.LinkIndex == 0 {
			continue
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err == nil && link.Attrs().MTU > 0 {
			return link.Attrs().MTU, nil
		}
	}
	links, err := netlinksafe.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list node interfaces: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagUp == 0 || a.Flags&net.FlagLoopback != 0 || a.MTU <= 0 {
			continue
		}
		return a.MTU, nil
	}
	return 0, fmt.Errorf("find node uplink mtu: no default route and no up non-loopback interface; set mtu in the configuration")
}
