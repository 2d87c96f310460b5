package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// echoServer listens on the host's loopback and echoes lines.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // out of file descriptors: wait it out
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go func() {
				defer func() { _ = c.Close() }()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// forwarded creates a namespace with addr forwarded into it.
func forwarded(t *testing.T, addr string) (*Namespace, *forwarder) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	n, err := newNamespace(fmt.Sprintf("%s%d-fwdtest", namePrefix, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.delete() })
	f, err := forwardInto(context.Background(), n, addr, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return n, f
}

// dialIn connects to addr from inside n.
func dialIn(t *testing.T, n *Namespace, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := n.Do(func(ns.NetNS) (err error) {
		c, err = net.DialTimeout("tcp", addr, 2*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// echoes reports whether a line sent on c comes back within wait.
func echoes(c net.Conn, wait time.Duration) error {
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("got %q", line)
	}
	return nil
}

// TestForwarderSurvivesAcceptErrors runs the process out of file
// descriptors so that accepting fails, then checks that the forwarder still
// bridges the next connection. Its accept loop used to return on the first
// error, leaving the listener open with nobody accepting.
func TestForwarderSurvivesAcceptErrors(t *testing.T) {
	addr := echoServer(t)
	n, f := forwarded(t, addr)
	if err := echoes(dialIn(t, n, addr), 5*time.Second); err != nil {
		t.Fatalf("first connection: %v", err)
	}

	// Client sockets made before the limit is tightened: connecting them
	// needs no new descriptor, accepting them does.
	port := f.l.Addr().(*net.TCPAddr).Port
	var socks []int
	if err := n.Do(func(ns.NetNS) error {
		for range 4 {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			socks = append(socks, fd)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, fd := range socks {
			_ = syscall.Close(fd)
		}
	}()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd") // lists its own descriptor too
	if err != nil {
		t.Fatal(err)
	}
	tight := lim
	tight.Cur = uint64(len(fds) - 1)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &tight); err != nil {
		t.Fatal(err)
	}
	failed := f.acceptErrors.Load()
	for _, fd := range socks {
		// The kernel completes the handshake into the listen backlog.
		_ = syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	}
	for deadline := time.Now().Add(5 * time.Second); f.acceptErrors.Load() == failed && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if f.acceptErrors.Load() == failed {
		t.Fatal("accept never failed for want of file descriptors; the test did not test anything")
	}
	if err := echoes(dialIn(t, n, addr), 5*time.Second); err != nil {
		t.Fatalf("a connection after accept failed for want of file descriptors was not bridged: %v", err)
	}
}

// TestForwarderBlackhole checks that Blackhole silences the established
// connections while new ones are bridged.
func TestForwarderBlackhole(t *testing.T) {
	addr := echoServer(t)
	n, f := forwarded(t, addr)
	old := dialIn(t, n, addr)
	if err := echoes(old, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := f.Blackhole(); got != 1 {
		t.Errorf("Blackhole silenced %d connections, want 1", got)
	}
	if err := echoes(old, 500*time.Millisecond); err == nil {
		t.Error("a blackholed connection still echoes")
	}
	if err := echoes(dialIn(t, n, addr), 5*time.Second); err != nil {
		t.Errorf("a new connection after Blackhole: %v", err)
	}
}

// TestForwarderPassesOnAReset checks that when the server resets its end,
// the client's end is closed at once instead of left half open.
func TestForwarderPassesOnAReset(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close() // RST
	}()
	n, _ := forwarded(t, l.Addr().String())
	c := dialIn(t, n, l.Addr().String())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Fatalf("client read after the server's reset: %v, want the connection closed", err)
	}
}
