package testbed

import (
	"context"
	"fmt"
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
