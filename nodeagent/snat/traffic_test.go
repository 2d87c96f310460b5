package snat

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// Addresses of the traffic test: a node with primary IP 10.0.0.4, a pod
// namespace with 10.0.0.9 routed like nicpool's datapath (a /32 route to a
// veth with proxy ARP on the node, a link-scoped default route in the pod),
// and one namespace standing for both the internet (203.0.113.10) and a
// peered VNet (198.51.100.10, non-masqueraded).
const (
	primaryIP  = "10.0.0.4"
	podIP      = "10.0.0.9"
	internetIP = "203.0.113.10"
	peeredIP   = "198.51.100.10"
)

// TestSNATTraffic sends real TCP connections, forwarded from a pod through
// the node, and checks the source address the far end sees. Forwarding works
// only because Sync turned ip_forward on in the node namespace.
func TestSNATTraffic(t *testing.T) {
	node, far, pod := newTestNS(t), newTestNS(t), newTestNS(t)
	inNS(t, node, func() error { return wireNode(far, pod) })
	inNS(t, far, wireFar)
	inNS(t, pod, wirePod)
	syncNS(t, node, Config{PrimaryIP: primaryIP, NonMasqueradeCIDRs: []string{"10.0.0.0/16", "198.51.100.0/24"}})

	tests := []struct {
		name     string
		from     ns.NetNS
		dst      string
		wantSeen string
	}{
		{"pod to internet is SNATed to the primary IP", pod, internetIP, primaryIP},
		{"pod to peered VNet keeps the pod IP", pod, peeredIP, podIP},
		{"node to internet is untouched", node, internetIP, primaryIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan string, 1)
			var ln net.Listener
			inNS(t, far, func() (err error) {
				ln, err = net.Listen("tcp4", net.JoinHostPort(tt.dst, "0"))
				return err
			})
			defer func() { _ = ln.Close() }()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					seen <- "accept: " + err.Error()
					return
				}
				seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
				_ = c.Close()
			}()
			inNS(t, tt.from, func() error {
				d := net.Dialer{Timeout: 5 * time.Second}
				c, err := d.DialContext(context.Background(), "tcp4", ln.Addr().String())
				if err != nil {
					return fmt.Errorf("dial %s: %w", ln.Addr(), err)
				}
				return c.Close()
			})
			if got := <-seen; got != tt.wantSeen {
				t.Errorf("far end saw source %s, want %s", got, tt.wantSeen)
			}
		})
	}
}

// wireNode runs in the node namespace: a veth to far with the primary IP
// and routes to the far addresses, and a veth to the pod with proxy ARP and
// a /32 route to the pod IP.
func wireNode(far, pod ns.NetNS) error {
	toFar, err := vethTo("eth0", "far0", far)
	if err != nil {
		return err
	}
	if err := upWithAddrs(toFar, primaryIP+"/24"); err != nil {
		return err
	}
	if err := routesVia(toFar, "203.0.113.0/24", "198.51.100.0/24"); err != nil {
		return err
	}
	toPod, err := vethTo("pod0", "p0", pod)
	if err != nil {
		return err
	}
	if err := upWithAddrs(toPod); err != nil {
		return err
	}
	// The sysctl path resolves in this thread's namespace: the test's own.
	for path, v := range map[string]string{
		"/proc/sys/net/ipv4/conf/pod0/proxy_arp":    "1",
		"/proc/sys/net/ipv4/neigh/pod0/proxy_delay": "0",
	} {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("set %s: %w", path, err)
		}
	}
	return routesVia(toPod, podIP+"/32")
}

// vethTo creates a veth named local whose peer, named remote, is moved into
// other; it returns the local end.
func vethTo(local, remote string, other ns.NetNS) (netlink.Link, error) {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: local}, PeerName: remote}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("add veth %s: %w", local, err)
	}
	peer, err := netlink.LinkByName(remote)
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetNsFd(peer, int(other.Fd())); err != nil {
		return nil, fmt.Errorf("move veth peer %s: %w", remote, err)
	}
	return netlink.LinkByName(local)
}

// wireFar runs in the far namespace: both far addresses, and a route back
// to the node's subnet through the node's primary IP, as the fabric would.
func wireFar() error {
	link, err := netlink.LinkByName("far0")
	if err != nil {
		return err
	}
	if err := upWithAddrs(link, internetIP+"/24", peeredIP+"/24"); err != nil {
		return err
	}
	if err := routesVia(link, primaryIP+"/32"); err != nil {
		return err
	}
	gw := &netlink.Route{Dst: &net.IPNet{IP: net.IPv4(10, 0, 0, 0).To4(), Mask: net.CIDRMask(24, 32)}, Gw: net.ParseIP(primaryIP)}
	if err := netlink.RouteReplace(gw); err != nil {
		return fmt.Errorf("route to the node subnet: %w", err)
	}
	return nil
}

// wirePod runs in the pod namespace: the pod IP as /32 and a link-scoped
// default route, which stays inside the test's namespaces.
func wirePod() error {
	link, err := netlink.LinkByName("p0")
	if err != nil {
		return err
	}
	if err := upWithAddrs(link, podIP+"/32"); err != nil {
		return err
	}
	return routesVia(link, "0.0.0.0/0")
}

func upWithAddrs(link netlink.Link, cidrs ...string) error {
	for _, c := range cidrs {
		addr, err := netlink.ParseAddr(c)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("add %s to %s: %w", c, link.Attrs().Name, err)
		}
	}
	return netlink.LinkSetUp(link)
}

func routesVia(link netlink.Link, cidrs ...string) error {
	for _, c := range cidrs {
		p := netip.MustParsePrefix(c)
		dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("route %s via %s: %w", c, link.Attrs().Name, err)
		}
	}
	return nil
}
