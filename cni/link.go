package cni

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

// vethQueues is the TX and RX queue count of each veth end (see createVeth).
const vethQueues = 1

// hostVethName is the node-side veth of an attachment; the agent derives
// the same name to find it.
func hostVethName(key agentapi.AttachmentKey) string {
	return vethname.VethName(key.ContainerID, key.IfName)
}

// errNotVeth marks a host link that carries nicpool's name but is not a veth.
var errNotVeth = errors.New("not a veth, so not created by nicpool")

// isLinkNotFound reports whether err means the link does not exist.
func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// lookupHostVeth returns the named veth in the current namespace, nil when
// there is no link of that name, and an error when the name is taken by a
// link that is not a veth (nicpool never deletes what it did not create).
func lookupHostVeth(name string) (*netlink.Veth, error) {
	link, err := netlinksafe.LinkByName(name)
	if isLinkNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up host interface %s: %w", name, err)
	}
	veth, ok := link.(*netlink.Veth)
	if !ok {
		return nil, fmt.Errorf("host interface %s is a %s: %w", name, link.Type(), errNotVeth)
	}
	return veth, nil
}

// deleteHostVeth removes the named host veth (and with it its peer and every
// route through it). A missing link is success, and so is a link of that
// name that is not a veth: it is not nicpool's, so it is left alone.
func deleteHostVeth(name string) error {
	veth, err := lookupHostVeth(name)
	if errors.Is(err, errNotVeth) {
		return nil
	}
	if err != nil || veth == nil {
		return err
	}
	if err := netlink.LinkDel(veth); err != nil && !isLinkNotFound(err) {
		return fmt.Errorf("delete host veth %s: %w", name, err)
	}
	return nil
}

// createVeth creates the pair in the current (node) namespace with the peer
// born inside the container namespace under its final name, so no temporary
// name can collide and no rename is needed. It returns the host end, up.
//
// Each end is created with one TX and one RX queue, which is what a veth
// ends up with anyway: without the attributes the kernel allocates one
// queue per possible CPU and then shrinks the real count to one
// (veth_init_queues), and shrinking waits for an expedited RCU grace period
// under the RTNL lock, once per end. That wait was 2 to 4 ms of a 4 ms
// veth create on the 2-core test VM, and it serialises concurrent ADDs.
func createVeth(hostName, ifName string, mtu int, netns ns.NetNS) (*netlink.Veth, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = hostName
	attrs.MTU = mtu
	attrs.NumTxQueues, attrs.NumRxQueues = vethQueues, vethQueues
	veth := &netlink.Veth{
		LinkAttrs:       attrs,
		PeerName:        ifName,
		PeerNamespace:   netlink.NsFd(int(netns.Fd())),
		PeerNumTxQueues: vethQueues,
		PeerNumRxQueues: vethQueues,
	}
	if err := netlink.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create veth %s/%s: interface %s already exists in %s", hostName, ifName, ifName, netns.Path())
		}
		return nil, fmt.Errorf("create veth %s/%s: %w", hostName, ifName, err)
	}
	host, err := lookupHostVeth(hostName)
	if err == nil && host == nil {
		err = fmt.Errorf("host veth %s vanished after creation", hostName)
	}
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return nil, fmt.Errorf("set host veth %s up: %w", hostName, err)
	}
	return host, nil
}

// configureHost enables proxy ARP and forwarding on the host veth and IPv4
// forwarding in the node namespace. Proxy ARP answers a pod that ARPs for anything despite the
// static gateway entry (for example after a manual neighbor flush).
func configureHost(hostName string) error {
	settings := []struct{ key, value string }{
		{fmt.Sprintf("net/ipv4/conf/%s/proxy_arp", hostName), "1"},
		// Answer proxied ARP at once instead of after up to 0.8 s.
		{fmt.Sprintf("net/ipv4/neigh/%s/proxy_delay", hostName), "0"},
		// Forward even where the node changed conf/default/forwarding.
		{fmt.Sprintf("net/ipv4/conf/%s/forwarding", hostName), "1"},
	}
	for _, s := range settings {
		if err := writeSysctl(s.key, s.value); err != nil {
			return err
		}
	}
	// No router advertisements are ever wanted on a pod veth.
	_ = writeSysctl(fmt.Sprintf("net/ipv6/conf/%s/accept_ra", hostName), "0")
	if v, err := sysctl.Sysctl("net/ipv4/ip_forward"); err == nil && v == "1" {
		return nil
	}
	return writeSysctl("net/ipv4/ip_forward", "1")
}

// writeSysctl sets a /proc/sys key. Unlike sysctl.Sysctl it does not read
// the value back: a write to /proc/sys either fails or took effect, and
// the read-back cost an open and a read per key on every ADD.
func writeSysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s to %s: %w", key, value, err)
	}
	return nil
}

// hostRoute is the node's /32 route to the pod through its veth.
func hostRoute(ip net.IP, host netlink.Link) *netlink.Route {
	return &netlink.Route{
		LinkIndex: host.Attrs().Index,
		Dst:       &net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)},
		Scope:     netlink.SCOPE_LINK,
		Protocol:  unix.RTPROT_STATIC,
	}
}

// addHostRoute installs the /32 route, replacing a stale one that a crashed
// earlier attachment of the same IP may have left on another link.
func addHostRoute(ip net.IP, host netlink.Link) error {
	if err := netlink.RouteReplace(hostRoute(ip, host)); err != nil {
		return fmt.Errorf("add host route %s/32 via %s: %w", ip, host.Attrs().Name, err)
	}
	return nil
}

// findHostRoute reports whether the node routes ip/32 through host.
func findHostRoute(ip net.IP, host netlink.Link) (bool, error) {
	routes, err := netlinksafe.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Dst: &net.IPNet{IP: ip.To4(), Mask: net.CIDRMask(32, 32)}, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return false, fmt.Errorf("list host routes to %s: %w", ip, err)
	}
	for _, r := range routes {
		if r.LinkIndex == host.Attrs().Index && r.Scope == netlink.SCOPE_LINK {
			return true, nil
		}
	}
	return false, nil
}
