package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
)

// StartStandaloneAgent starts vm's agent without Kubernetes (a testbed with
// NoKubernetes): source is "imds" (the NIC's pre-provisioned IPs, read
// from the testbed's instance metadata) or "arm" (the agent keeps its own
// NIC through armsim, reached at armsim's loopback address forwarded into
// the VM, with the VM's managed identity). extra are more flags.
func (tb *Testbed) StartStandaloneAgent(ctx context.Context, vm *VM, source string, extra ...string) error {
	args := []string{
		"--pool-source=" + source,
		"--socket=" + vm.SocketPath,
		"--state-dir=" + filepath.Join(vm.Dir, "state"),
		"--cni-bin-dir=" + vm.CNIBinDir,
		"--cni-conf-dir=" + vm.CNIConfDir,
		"--cni-binary=" + filepath.Join(tb.cfg.BinDir, "nicpool"),
		"--non-masquerade-cidrs=" + PeerCIDR + "," + OnPremCIDR,
		"--metrics-addr=127.0.0.1:9100",
		"--cni-version=1.0.0",
		"--pool-resync=1s",
	}
	switch source {
	case "imds":
		args = append(args, "--vnet-cidrs="+VNetCIDR)
	case "arm":
		u, err := url.Parse(tb.Sim.URL())
		if err != nil {
			return fmt.Errorf("parse armsim url: %w", err)
		}
		fwd, err := forwardInto(ctx, vm.NS, u.Host, tb.cfg.Logf)
		if err != nil {
			return err
		}
		tb.addCloser(fwd.Close)
		// The agent's default --auth-mode=managed-identity: azidentity asks
		// the instance metadata service at 169.254.169.254, which the
		// fabric serves to this VM only (armsim's token for this VM's
		// identity, which may write only this VM's NIC).
		args = append(args, "--arm-endpoint="+tb.Sim.URL(), "--arm-ca-file="+tb.caPath(), "--vm-id="+vm.VMID)
	default:
		return fmt.Errorf("unknown pool source %q", source)
	}
	vm.Agent = &Process{
		Name: vm.Name + "-agent", bin: filepath.Join(tb.cfg.BinDir, "nicpool-agent"), netns: vm.NS,
		LogPath: filepath.Join(vm.Dir, "agent.log"), args: append(args, extra...),
	}
	return vm.Agent.Start(ctx)
}

// Container is a network namespace standing in for a container that no
// CNI-aware runtime manages (Docker's --network none), wired with
// `nicpoolctl attach`.
type Container struct {
	ID string
	VM *VM
	NS *Namespace
	IP string
}

// AttachContainer creates a container namespace on vm and runs
// `nicpoolctl attach --id ID <netns>` in vm's namespace, as a Docker host's
// administrator would.
func (tb *Testbed) AttachContainer(ctx context.Context, vm *VM) (*Container, error) {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	c := &Container{ID: hex.EncodeToString(id), VM: vm}
	var err error
	if c.NS, err = tb.newNamespace("c-" + c.ID[:8]); err != nil {
		return nil, err
	}
	out, err := tb.nicpoolctl(ctx, vm, "attach", "--id", c.ID, c.NS.Path())
	if err != nil {
		// As a runtime follows a failed ADD with a DEL before it gives up
		// on the sandbox.
		_, derr := tb.nicpoolctl(ctx, vm, "detach", "--id", c.ID, c.NS.Path())
		return nil, errors.Join(err, derr, tb.removeNamespace(c.NS))
	}
	// "attached ID: 10.240.x.y/32"
	_, cidr, ok := strings.Cut(strings.TrimSpace(out), ": ")
	ip, _, ok2 := strings.Cut(cidr, "/")
	if !ok || !ok2 {
		return nil, fmt.Errorf("nicpoolctl attach said %q, not the IP it attached", out)
	}
	c.IP = ip
	return c, nil
}

// DetachContainer runs `nicpoolctl detach --id ID` and deletes the
// container's namespace.
func (tb *Testbed) DetachContainer(ctx context.Context, c *Container) error {
	_, err := tb.nicpoolctl(ctx, c.VM, "detach", "--id", c.ID, c.NS.Path())
	return errors.Join(err, tb.removeNamespace(c.NS))
}

// nicpoolctl runs nicpoolctl with vm's CNI directories inside vm's namespace.
func (tb *Testbed) nicpoolctl(ctx context.Context, vm *VM, cmd string, args ...string) (string, error) {
	cache := filepath.Join(vm.Dir, "cni-cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", cache, err)
	}
	full := append([]string{cmd, "--cni-conf-dir", vm.CNIConfDir, "--cni-bin-dir", vm.CNIBinDir, "--cni-cache-dir", cache}, args...)
	var out []byte
	err := vm.NS.Do(func(ns.NetNS) error {
		var err error
		out, err = exec.CommandContext(ctx, filepath.Join(tb.cfg.BinDir, "nicpoolctl"), full...).CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("nicpoolctl %s in %s: %w: %s", cmd, vm.Name, err, out)
	}
	return string(out), nil
}
