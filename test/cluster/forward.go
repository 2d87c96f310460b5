package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// listenIn listens on addr inside n.
func listenIn(n *testbed.Namespace, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, n.Name, err)
	}
	return l, nil
}

// dialIn connects to addr from inside n.
func dialIn(ctx context.Context, n *testbed.Namespace, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp4", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, n.Name, err)
	}
	return c, nil
}

// serve accepts connections on l until it is closed, handing each to handle.
func serve(l net.Listener, handle func(net.Conn)) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go handle(conn)
	}
}

// forwardToHost makes the host address target reachable at listen inside n
// (the API server at the control plane's site address, ARM on a node's
// loopback). Nothing is added to the host's namespace: the listening socket
// is n's, the outgoing one the host's.
func (c *Cluster) forwardToHost(n *testbed.Namespace, listen, target string) error {
	l, err := listenIn(n, listen)
	if err != nil {
		return err
	}
	c.closeOnStop(l)
	go serve(l, func(in net.Conn) {
		out, err := (&net.Dialer{Timeout: 5 * time.Second}).Dial("tcp4", target)
		if err != nil {
			_ = in.Close()
			return
		}
		bridge(in, out)
	})
	return nil
}

// startEgressProxy starts the HTTP CONNECT proxy the API server uses to
// reach kubelets (egress selector "cluster"): it dials from the control
// plane site's namespace, which the fabric connects to every node. It
// returns the egress selector configuration file.
func (c *Cluster) startEgressProxy() (string, error) {
	socket := filepath.Join(c.pki.dir, "egress.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		return "", fmt.Errorf("listen for the api server's egress: %w", err)
	}
	c.closeOnStop(l)
	go serve(l, c.connect)
	cfg := filepath.Join(c.pki.dir, "egress-selector.yaml")
	return cfg, writeEgressConfig(cfg, socket)
}

func (c *Cluster) connect(in net.Conn) {
	r := bufio.NewReader(in)
	req, err := http.ReadRequest(r)
	if err != nil {
		_ = in.Close()
		return
	}
	site := c.cpSite()
	if req.Method != http.MethodConnect || site == nil {
		_, _ = io.WriteString(in, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		_ = in.Close()
		return
	}
	out, err := dialIn(context.Background(), site.NS, req.Host)
	if err != nil {
		_, _ = fmt.Fprintf(in, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\n%v\n", err)
		_ = in.Close()
		return
	}
	if _, err := io.WriteString(in, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = in.Close()
		_ = out.Close()
		return
	}
	bridge(&bufferedConn{Conn: in, r: r}, out)
}

// bufferedConn reads what the proxy's reader already buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// bridge copies both ways until both directions ended, then closes both.
func bridge(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}

// closeOnStop registers a listener to close at teardown.
func (c *Cluster) closeOnStop(l net.Listener) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners = append(c.listeners, l)
}

func (c *Cluster) closeListeners() error {
	c.mu.Lock()
	ls := c.listeners
	c.listeners = nil
	c.mu.Unlock()
	var errs []error
	for _, l := range ls {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
