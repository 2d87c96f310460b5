package snat

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestLoopbackUntouched checks that Sync leaves loopback traffic alone: a
// loopback connection open before the first Sync keeps flowing both ways
// after it, and a new one keeps its 127.0.0.1 source. Loopback once matched
// the SNAT rule (its source is not the primary IP, its destination not in
// the VNet): the first Sync's nat table made conntrack pick the open
// connection up mid-stream and rewrite its next packet, which reset the
// server's end while the client's end went silent until it next sent (the
// e2e agent's API connection, bridged over loopback, stalled for 30 s).
func TestLoopbackUntouched(t *testing.T) {
	node := newTestNS(t)
	var ln net.Listener
	var client net.Conn
	inNS(t, node, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0-peer"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		for _, name := range []string{"eth0", "eth0-peer"} {
			link, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(link); err != nil {
				return err
			}
		}
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := upWithAddrs(link, primaryIP+"/24"); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		client, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	})
	defer func() { _ = ln.Close(); _ = client.Close() }()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = server.Close() }()

	syncNS(t, node, Config{PrimaryIP: primaryIP, NonMasqueradeCIDRs: []string{"10.0.0.0/16"}})

	// The server speaks first, as an API server sending a watch event does.
	exchange := func(from, to net.Conn, msg string) {
		t.Helper()
		if _, err := fmt.Fprintln(from, msg); err != nil {
			t.Fatalf("send %q: %v", msg, err)
		}
		_ = to.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := bufio.NewReader(to).ReadString('\n')
		if err != nil || got != msg+"\n" {
			t.Fatalf("%q sent over the loopback connection open before Sync: got %q, %v", msg, got, err)
		}
	}
	exchange(server, client, "event")
	exchange(client, server, "request")

	var fresh net.Conn
	inNS(t, node, func() (err error) {
		fresh, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	})
	defer func() { _ = fresh.Close() }()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if src := c.RemoteAddr().(*net.TCPAddr).IP.String(); src != "127.0.0.1" {
		t.Errorf("a loopback connection after Sync arrives from %s, want 127.0.0.1", src)
	}
}
