package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// forwarder makes a TCP address of the host's loopback reachable at the same
// address inside a namespace, whose loopback is its own. The listening socket
// is created inside the namespace; each accepted connection is bridged to a
// socket made in the host namespace. Nothing is added to the host namespace.
//
// A bridge behaves like the path it stands for: a half-close (FIN) is passed
// on and the other direction keeps flowing; an error on either side (a
// reset, a failed write) closes both sides at once, so neither peer keeps
// talking to a connection whose other half is gone. Blackhole stands for a
// path that died silently.
type forwarder struct {
	l    net.Listener
	addr string
	logf func(format string, args ...any)

	mu     sync.Mutex
	closed bool
	links  map[*link]struct{}
	wg     sync.WaitGroup

	acceptErrors atomic.Int64 // accept failures waited out, for tests
}

// link is one bridged connection.
type link struct {
	in, out *net.TCPConn
	frozen  chan struct{} // closed by Blackhole
	done    chan struct{} // closed when both sockets are closed
	freeze  sync.Once
	abort   sync.Once
}

// forwardInto starts forwarding addr into n; ctx bounds the listen, Close
// ends the forwarding and every bridged connection.
func forwardInto(ctx context.Context, n *Namespace, addr string, logf func(string, ...any)) (*forwarder, error) {
	var l net.Listener
	err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = listen(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, n.Name, err)
	}
	f := &forwarder{l: l, addr: addr, logf: logf, links: map[*link]struct{}{}}
	f.wg.Go(f.acceptLoop)
	return f, nil
}

// acceptLoop accepts until the listener is closed. Any other accept error
// (out of file descriptors under load, an aborted handshake) is waited out:
// a loop that returned on it would leave the listener open with nobody
// accepting, so every later connect would hang in the backlog.
func (f *forwarder) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		c, err := f.l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			f.acceptErrors.Add(1)
			f.logf("Forwarder to %s failed to accept, retrying in %s: %v", f.addr, backoff, err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		f.wg.Go(func() { f.bridge(c.(*net.TCPConn)) })
	}
}

func (f *forwarder) bridge(in *net.TCPConn) {
	// This goroutine's thread is in the host namespace: only a locked
	// thread ever enters another one.
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
	c, err := d.Dial("tcp", f.addr)
	if err != nil {
		// Closing at once tells the client, which retries; a hang would not.
		f.logf("Forwarder to %s failed to dial: %v", f.addr, err)
		_ = in.Close()
		return
	}
	l := &link{in: in, out: c.(*net.TCPConn), frozen: make(chan struct{}), done: make(chan struct{})}
	_ = l.in.SetKeepAlive(true)
	if !f.track(l) {
		l.close()
		return
	}
	defer f.untrack(l)
	errs := make(chan error, 2)
	go func() { errs <- l.pump(l.out, l.in) }()
	go func() { errs <- l.pump(l.in, l.out) }()
	for range 2 {
		if err := <-errs; err != nil {
			l.close()
		}
	}
	l.close()
}

// pump copies src to dst. A clean end of src is passed on as a half-close
// and returns nil; anything else returns the error, and the caller closes
// both sides. After Blackhole it neither reads nor writes again.
func (l *link) pump(dst, src *net.TCPConn) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-l.frozen:
			<-l.done
			return nil
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				select {
				case <-l.frozen:
					<-l.done
					return nil
				default:
					return werr
				}
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			if cerr := dst.CloseWrite(); cerr != nil {
				return cerr
			}
			return nil
		case err != nil:
			return err
		}
	}
}

// blackhole silences the link in both directions; its sockets stay open.
func (l *link) blackhole() {
	l.freeze.Do(func() {
		close(l.frozen)
		// Wake the pumps' blocked reads and writes; they see frozen and stop.
		_ = l.in.SetDeadline(time.Now())
		_ = l.out.SetDeadline(time.Now())
	})
}

func (l *link) close() {
	l.abort.Do(func() {
		_ = l.in.Close()
		_ = l.out.Close()
		close(l.done)
	})
}

func (f *forwarder) track(l *link) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.links[l] = struct{}{}
	return true
}

func (f *forwarder) untrack(l *link) {
	f.mu.Lock()
	delete(f.links, l)
	f.mu.Unlock()
}

// Blackhole makes every connection bridged so far deliver nothing more in
// either direction while both its sockets stay open, as a NAT or conntrack
// entry that vanished or a peer that lost power would; later connections
// are bridged normally. It returns how many connections it silenced.
func (f *forwarder) Blackhole() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for l := range f.links {
		select {
		case <-l.frozen:
		default:
			l.blackhole()
			n++
		}
	}
	return n
}

// Close stops accepting, closes every bridged connection and waits for the
// bridges to end.
func (f *forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	links := make([]*link, 0, len(f.links))
	for l := range f.links {
		links = append(links, l)
	}
	f.mu.Unlock()
	err := f.l.Close()
	for _, l := range links {
		l.close()
	}
	f.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close forwarder on %s: %w", f.l.Addr(), err)
	}
	return nil
}
