package cni

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ping sends ICMP echo requests from src inside netns and waits for a reply
// from dst. The deadline bounds the test, it is not a timing assertion.
func ping(netns ns.NetNS, src, dst string) error {
	return netns.Do(func(ns.NetNS) error {
		c, err := icmp.ListenPacket("ip4:icmp", src)
		if err != nil {
			return fmt.Errorf("open icmp socket on %s: %w", src, err)
		}
		defer func() { _ = c.Close() }()
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: 0x6e70, Seq: 1, Data: []byte("nicpool")}}
		wire, err := msg.Marshal(nil)
		if err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for attempt := 0; attempt < 5; attempt++ {
			if _, err := c.WriteTo(wire, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
				return fmt.Errorf("send echo %s -> %s: %w", src, dst, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			for {
				n, peer, err := c.ReadFrom(buf)
				if err != nil {
					break
				}
				reply, err := icmp.ParseMessage(1, buf[:n])
				if err == nil && reply.Type == ipv4.ICMPTypeEchoReply && peer.String() == dst {
					return nil
				}
			}
		}
		return errors.New("no echo reply from " + dst + " to " + src)
	})
}
