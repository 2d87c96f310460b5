package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// ProbePort is where every probe server listens.
const ProbePort = 7777

// StartProbeServer listens on ProbePort inside n; each connection is answered
// with the source address the server saw, so a test learns whether SNAT
// happened on the way. ctx bounds only the listen.
func (tb *Testbed) StartProbeServer(ctx context.Context, n *Namespace) error {
	return tb.StartServer(ctx, n, ProbePort, func(_, remote string) string { return remote })
}

// StartServer listens on port inside n and answers each connection with one
// line, answer(local address, remote address), then closes it; it stops when
// the testbed closes. ctx bounds only the listen.
func (tb *Testbed) StartServer(ctx context.Context, n *Namespace, port int, answer func(local, remote string) string) error {
	l, err := tb.Listen(ctx, n, port)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			local, _, _ := net.SplitHostPort(c.LocalAddr().String())
			remote, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, _ = fmt.Fprintln(c, answer(local, remote))
			_ = c.Close()
		}
	}()
	return nil
}

// Listen listens on TCP port inside n; the testbed closes the listener when it
// closes, and so may the caller (to stop a service, such as a health endpoint).
func (tb *Testbed) Listen(ctx context.Context, n *Namespace, port int) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = listen(ctx, "tcp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on port %d in %s: %w", port, n.Name, err)
	}
	tb.addCloser(func() error {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	return l, nil
}

// Probe connects from inside n to ip:ProbePort and returns the source
// address the server there saw.
func Probe(ctx context.Context, n *Namespace, ip string) (string, error) {
	return ProbeAt(ctx, n, ip, ProbePort)
}

// ProbeAt connects from inside n to ip:port and returns the first line the
// server there answers (a probe server's: the source address it saw).
func ProbeAt(ctx context.Context, n *Namespace, ip string, port int) (string, error) {
	var seen string
	err := n.Do(func(ns.NetNS) error {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp4", fmt.Sprintf("%s:%d", ip, port))
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer func() { _ = c.Close() }()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read answer: %w", err)
		}
		seen = strings.TrimSpace(line)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("probe %s:%d from %s: %w", ip, port, n.Name, err)
	}
	return seen, nil
}

// ProbeEventually retries Probe until it succeeds or timeout passes (routes
// follow ARM with a short delay).
func ProbeEventually(ctx context.Context, n *Namespace, ip string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		seen, err := Probe(ctx, n, ip)
		if err == nil || time.Now().After(deadline) || errors.Is(ctx.Err(), context.Canceled) {
			return seen, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// listen listens on addr in the network namespace of the calling thread;
// ctx bounds only the listen.
func listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", network, addr, err)
	}
	return l, nil
}
