package attach

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/cni/internal/fakeagent"
	"github.com/nicpool/nicpool/nodeagent/install"
)

// node is a VM stand-in: a network namespace with the nicpool plugin and
// the conflist the agent installs, and a fake agent handing out two IPs.
type node struct {
	ns    ns.NetNS
	agent *fakeagent.Agent
	opts  Options
}

func newNS(t *testing.T) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		if _, err := os.Stat(n.Path()); err == nil {
			_ = testutils.UnmountNS(n)
		}
	})
	return n
}

func newNode(t *testing.T) *node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (the node and the container stand-ins)")
	}
	dir, err := os.MkdirTemp("", "npattach") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	plugin := filepath.Join(dir, "nicpool-src")
	build := exec.Command("go", "build", "-o", plugin, "github.com/nicpool/nicpool/cmd/nicpool")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the plugin: %v\n%s", err, out)
	}
	socket := filepath.Join(dir, "agent.sock")
	agent, err := fakeagent.Start(t.Context(), socket, []string{"10.70.0.11", "10.70.0.12"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Close() })
	o := Options{ConfDir: filepath.Join(dir, "net.d"), BinDirs: []string{filepath.Join(dir, "bin")}, CacheDir: filepath.Join(dir, "cache")}
	// The conflist the agent installs, by the agent's own installer.
	inst, err := install.New(install.Config{BinarySource: plugin, BinDir: o.BinDirs[0], ConfDir: o.ConfDir, AgentSocket: socket, MTU: 1400, CNIVersion: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Install(); err != nil {
		t.Fatal(err)
	}
	return &node{ns: newNS(t), agent: agent, opts: o}
}

// in runs fn in the node's namespace; the plugin libcni starts inherits it.
func (n *node) in(t *testing.T, fn func() error) {
	t.Helper()
	if err := n.ns.Do(func(ns.NetNS) error { return fn() }); err != nil {
		t.Fatal(err)
	}
}

// containerIPs lists eth0's IPv4 addresses inside netns path.
func containerIPs(t *testing.T, path string) []string {
	t.Helper()
	var ips []string
	err := ns.WithNetNSPath(path, func(ns.NetNS) error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return nil // no eth0: nothing attached
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			ips = append(ips, a.IPNet.String())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ips
}

// TestAttachDetachByPath wires a plain network namespace (standing in for
// a `docker run --network none` container) through the installed conflist
// and unwires it; attaching twice keeps the one IP.
func TestAttachDetachByPath(t *testing.T) {
	n := newNode(t)
	ctr := newNS(t)
	o := n.opts
	o.Target = ctr.Path()
	var out bytes.Buffer
	n.in(t, func() error {
		args := []string{"attach", "--cni-conf-dir", o.ConfDir, "--cni-bin-dir", o.BinDirs[0], "--cni-cache-dir", o.CacheDir, "--id", "docker-abc", ctr.Path()}
		if code := Main(args, &out, &out); code != 0 {
			return fmt.Errorf("attach exited %d: %s", code, out.String())
		}
		return nil
	})
	if got := containerIPs(t, ctr.Path()); len(got) != 1 || got[0] != "10.70.0.11/32" {
		t.Fatalf("container eth0 has %v, want 10.70.0.11/32 (output %q)", got, out.String())
	}
	if !strings.Contains(out.String(), "attached docker-abc: 10.70.0.11/32") {
		t.Errorf("output %q does not say what was attached", out.String())
	}
	n.in(t, func() error {
		res, _, err := Attach(context.Background(), withID(o, "docker-abc"))
		if err == nil && res.IPs[0].Address.IP.String() != "10.70.0.11" {
			err = fmt.Errorf("attaching again gave %v, want the same IP", res.IPs)
		}
		return err
	})
	n.in(t, func() error {
		_, err := Detach(context.Background(), withID(o, "docker-abc"))
		return err
	})
	if got := containerIPs(t, ctr.Path()); len(got) != 0 {
		t.Errorf("after detach the container still has %v", got)
	}
	if held := n.agent.Held(); len(held) != 0 {
		t.Errorf("after detach the agent still holds %v", held)
	}
}

// TestAttachByPIDAndDetachAfterExit attaches by a process ID in the
// container (Docker's State.Pid) with the ID derived from the namespace;
// once the container's namespace is gone, detach with that ID still gives
// the IP back.
func TestAttachByPIDAndDetachAfterExit(t *testing.T) {
	n := newNode(t)
	ctr := newNS(t)
	// A process inside the container namespace, as Docker's would be.
	var proc *exec.Cmd
	if err := ctr.Do(func(ns.NetNS) error {
		runtime.LockOSThread() // the child must fork from this thread
		proc = exec.Command("sleep", "600")
		return proc.Start()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait() })
	o := n.opts
	o.Target = fmt.Sprint(proc.Process.Pid)
	var id string
	n.in(t, func() error {
		res, got, err := Attach(context.Background(), o)
		if err == nil && len(res.IPs) != 1 {
			err = fmt.Errorf("result %v has no IP", res)
		}
		id = got
		return err
	})
	want, err := DefaultID(ctr.Path())
	if err != nil || id != want {
		t.Fatalf("attach by pid used id %q, want %q derived from the namespace (%v)", id, want, err)
	}
	if got := containerIPs(t, ctr.Path()); len(got) != 1 {
		t.Fatalf("container has %v, want one IP", got)
	}
	// The container exits and its namespace goes away.
	_ = proc.Process.Kill()
	_ = proc.Wait()
	_ = ctr.Close() // an open handle keeps the bind mount busy
	if err := testutils.UnmountNS(ctr); err != nil {
		t.Fatal(err)
	}
	n.in(t, func() error {
		_, err := Detach(context.Background(), Options{ID: id, ConfDir: o.ConfDir, BinDirs: o.BinDirs, CacheDir: o.CacheDir})
		return err
	})
	if held := n.agent.Held(); len(held) != 0 {
		t.Errorf("after detach the agent still holds %v", held)
	}
}

// TestBadTargets: clear errors, never a panic.
func TestBadTargets(t *testing.T) {
	for _, target := range []string{"", "0", "-3", "/nonexistent/netns", "999999999"} {
		if _, err := NetNSPath(target); err == nil {
			t.Errorf("NetNSPath(%q) succeeded", target)
		}
	}
	var out bytes.Buffer
	if code := Main([]string{"attach", "--cni-conf-dir", t.TempDir(), "/proc/self/ns/net"}, &out, &out); code != 1 || !strings.Contains(out.String(), "load cni network") {
		t.Errorf("attach without an installed network: exit %d, %q", code, out.String())
	}
	if code := Main([]string{"frobnicate"}, &out, &out); code != 2 {
		t.Errorf("unknown subcommand: exit %d", code)
	}
}

func withID(o Options, id string) Options { o.ID = id; return o }
