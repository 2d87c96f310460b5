package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// defaultTimeout bounds every client command.
const defaultTimeout = 5 * time.Second

// client holds the client commands' flags.
type client struct {
	Timeout time.Duration
	Server  string
	Send    string
}

func (c client) run(ctx context.Context, cmd, arg string, out io.Writer) error {
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: --timeout %s must be positive", errUsage, c.Timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	switch cmd {
	case "get":
		return get(ctx, arg, out)
	case "resolve":
		return c.resolve(ctx, arg, out)
	default:
		return c.exchange(ctx, cmd, arg, out)
	}
}

// get prints the body of GET url; a status other than 2xx is an error (the
// body is printed first, it often says why).
func get(ctx context.Context, url string, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: get %q: %w", errUsage, url, err)
	}
	// No proxy from the environment: tests mean the address they give.
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := io.Copy(out, resp.Body); err != nil {
		return fmt.Errorf("read body of %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	return nil
}

// resolve prints name's addresses, sorted, one a line. Without --server it
// resolves as a program in the pod does (/etc/resolv.conf, search domains).
func (c client) resolve(ctx context.Context, name string, out io.Writer) error {
	r := &net.Resolver{PreferGo: true}
	if c.Server != "" {
		server := c.Server
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
		}
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}
	}
	addrs, err := r.LookupHost(ctx, name)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", name, err)
	}
	sort.Strings(addrs)
	_, err = fmt.Fprintln(out, strings.Join(addrs, "\n"))
	return err
}

// exchange sends --send over tcp or udp and prints the answer: over TCP all
// the server sends until it closes (our write side is closed after sending,
// so the echo server finishes), over UDP the first reply.
func (c client) exchange(ctx context.Context, network, addr string, out io.Writer) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("connect %s %s: %w", network, addr, err)
	}
	defer func() { _ = conn.Close() }()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline on %s: %w", addr, err)
	}
	if c.Send != "" || network == "udp" {
		if _, err := io.WriteString(conn, c.Send); err != nil {
			return fmt.Errorf("send to %s %s: %w", network, addr, err)
		}
	}
	if network == "udp" {
		buf := make([]byte, 64<<10)
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("read reply from udp %s: %w", addr, err)
		}
		_, err = out.Write(buf[:n])
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		if err := tc.CloseWrite(); err != nil {
			return fmt.Errorf("close sending side to %s: %w", addr, err)
		}
	}
	if _, err := io.Copy(out, conn); err != nil {
		return fmt.Errorf("read from tcp %s: %w", addr, err)
	}
	return nil
}

// printAddrs prints every non-loopback address of this network namespace as
// IP/PREFIX, one a line.
func printAddrs(out io.Writer) error {
	ifaces, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
				if _, err := fmt.Fprintf(out, "%s %s\n", ifc.Name, n); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
