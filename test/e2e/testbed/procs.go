package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Process is a nicpool binary the testbed runs, optionally inside a namespace.
type Process struct {
	Name    string
	LogPath string
	bin     string
	args    []string
	netns   *Namespace

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs the process; its output goes to LogPath (appended, so restarts
// keep the earlier log). ctx's end does not end the process: Stop and Kill do.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.Name, err)
	}
	if _, err := fmt.Fprintf(log, "=== %s starting %s %v\n", time.Now().Format(time.RFC3339Nano), p.bin, p.args); err != nil {
		_ = log.Close()
		return fmt.Errorf("write log of %s: %w", p.Name, err)
	}
	// Stop and Kill end the process, signalling its whole process group,
	// which a context's cancel (the leader only) would not.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := func(ns.NetNS) error { return cmd.Start() }
	if p.netns != nil {
		// The child inherits the network namespace of the locked thread
		// that forks it.
		err = p.netns.Do(start)
	} else {
		err = start(nil)
	}
	if err != nil {
		_ = log.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		_ = log.Close()
		close(done)
	}(p.done)
	return nil
}

// Kill sends SIGKILL, like a node losing power or the OOM killer, and waits.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 0) }

// Stop sends SIGTERM and waits up to 10 s before killing.
func (p *Process) Stop() { p.signal(syscall.SIGTERM, 10*time.Second) }

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// forwarder makes a TCP address of the host's loopback reachable at the same
// address inside a namespace, whose loopback is its own. The listening socket
// is created inside the namespace; each accepted connection is bridged to a
// socket made in the host namespace. Nothing is added to the host namespace.
type forwarder struct {
	l net.Listener
}

// forwardInto starts forwarding addr into n; ctx bounds the listen, Close
// ends the forwarding.
func forwardInto(ctx context.Context, n *Namespace, addr string) (*forwarder, error) {
	var l net.Listener
	err := n.Do(func(ns.NetNS) error {
		var err error
		l, err = listen(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, n.Name, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// The forwarder outlives ctx; Close ends it.
			go bridge(context.WithoutCancel(ctx), c, addr)
		}
	}()
	return &forwarder{l: l}, nil
}

func bridge(ctx context.Context, in net.Conn, addr string) {
	defer func() { _ = in.Close() }()
	d := net.Dialer{Timeout: 5 * time.Second}
	out, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	<-done
}

func (f *forwarder) Close() error {
	if err := f.l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close forwarder on %s: %w", f.l.Addr(), err)
	}
	return nil
}
