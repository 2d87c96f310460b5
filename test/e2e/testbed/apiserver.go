package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// RestartAPIServer kills the kube-apiserver with SIGKILL, keeps it down for
// down, and starts it again with the same command line, certificates and
// etcd, as a control-plane node reboot would: every client connection is
// reset and must be made again. It returns once /readyz answers.
//
// envtest cannot restart its API server itself (its Stop throws the
// certificates away), so the testbed finds its own child kube-apiserver and
// reruns its command line; envtest's Stop later finds its process gone and
// only cleans up, after the closer registered here stopped the new one.
func (tb *Testbed) RestartAPIServer(ctx context.Context, down time.Duration) error {
	tb.apiMu.Lock()
	defer tb.apiMu.Unlock()
	pid, args, err := childAPIServer()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill kube-apiserver %d: %w", pid, err)
	}
	if tb.apiCmd != nil && tb.apiCmd.Process.Pid == pid {
		_ = tb.apiCmd.Wait()
	}
	if err := waitGone(ctx, pid); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("restart kube-apiserver: %w", ctx.Err())
	case <-time.After(down):
	}
	log, err := os.OpenFile(filepath.Join(tb.cfg.WorkDir, "kube-apiserver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open kube-apiserver log: %w", err)
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver again: %w", err)
	}
	if tb.apiCmd == nil {
		tb.addCloser(tb.stopRestartedAPIServer)
	}
	tb.apiCmd = cmd
	return tb.waitAPIReady(ctx, 90*time.Second)
}

func (tb *Testbed) stopRestartedAPIServer() error {
	tb.apiMu.Lock()
	defer tb.apiMu.Unlock()
	if tb.apiCmd == nil {
		return nil
	}
	_ = tb.apiCmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = tb.apiCmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = tb.apiCmd.Process.Kill()
		<-done
	}
	tb.apiCmd = nil
	return nil
}

func (tb *Testbed) waitAPIReady(ctx context.Context, timeout time.Duration) error {
	cfg := rest.CopyConfig(tb.Env.Config)
	cfg.Timeout = 2 * time.Second
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("build readiness client: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready %s after its restart: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for kube-apiserver: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// childAPIServer finds the kube-apiserver this process started and returns
// its pid and command line.
func childAPIServer() (int, []string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, fmt.Errorf("list processes: %w", err)
	}
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(stat)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		fields := strings.Fields(s[rp+1:])
		if s[lp+1:rp] != "kube-apiserver" || len(fields) < 2 || fields[1] != strconv.Itoa(me) {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return 0, nil, fmt.Errorf("read kube-apiserver command line: %w", err)
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		return pid, args, nil
	}
	return 0, nil, errors.New("find kube-apiserver: no child process of the testbed has that name")
}

func waitGone(ctx context.Context, pid int) error {
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// A zombie (Z) is gone for the port; its parent reaps it.
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for kube-apiserver %d to exit: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
