package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// ErrPluginKilled is returned (wrapped) by StartPodKillingPlugin when the
// kill landed mid-ADD.
var ErrPluginKilled = errors.New("the nicpool plugin was killed mid-ADD after the agent allocated")

// StartPodKillingPlugin is StartPod, except that the nicpool plugin's ADD is
// killed with SIGKILL as soon as the VM's agent has recorded the pod's
// allocation, as an OOM kill or a runtime crash would, mid-wiring. It reports
// whether the kill landed (the plugin may finish first). As for any failed
// ADD, the runtime's DEL of the sandbox follows.
func (tb *Testbed) StartPodKillingPlugin(ctx context.Context, vm *VM, name string) (*Pod, bool, error) {
	var k *killExec
	p, err := tb.startPod(ctx, vm, name, func(id string) invoke.Exec {
		k = &killExec{tb: tb, vm: vm, containerID: id}
		return k
	})
	return p, k != nil && k.landed.Load(), err
}

// killExec runs plugins as libcni does, but kills the nicpool plugin's ADD
// once the agent holds an allocation for containerID.
type killExec struct {
	tb          *Testbed
	vm          *VM
	containerID string
	landed      atomic.Bool
}

var defaultExec = &invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}}

func (k *killExec) FindInPath(plugin string, paths []string) (string, error) {
	return defaultExec.FindInPath(plugin, paths)
}

func (k *killExec) Decode(b []byte) (version.PluginInfo, error) { return defaultExec.Decode(b) }

// ExecPlugin runs on the caller's thread, inside the VM namespace, so the
// plugin starts there as with libcni's own exec.
func (k *killExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	if filepath.Base(path) != "nicpool" || !slices.Contains(environ, "CNI_COMMAND=ADD") {
		return defaultExec.ExecPlugin(ctx, path, stdin, environ)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = environ, bytes.NewReader(stdin), &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start plugin %s: %w", path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				return nil, fmt.Errorf("plugin %s failed: %w: %s%s", path, err, stdout.Bytes(), stderr.Bytes())
			}
			return stdout.Bytes(), nil
		default:
		}
		if k.allocated(ctx) {
			_ = cmd.Process.Kill()
			if err := <-done; err == nil {
				// It finished between the check and the kill.
				return stdout.Bytes(), nil
			}
			k.landed.Store(true)
			return nil, ErrPluginKilled
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (k *killExec) allocated(ctx context.Context) bool {
	held, err := k.tb.AgentAllocations(ctx, k.vm)
	if err != nil {
		return false
	}
	for _, id := range held {
		if id == k.containerID {
			return true
		}
	}
	return false
}
