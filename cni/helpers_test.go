package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/cni/internal/fakeagent"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// pluginDir holds the nicpool binary built for this test run.
var pluginDir string

// referencePluginDir is where Debian's containernetworking-plugins live.
const referencePluginDir = "/usr/lib/cni"

// Addresses of the simulated node.
const (
	nodeIP     = "10.240.0.4"
	uplinkMTU  = 1400
	netName    = "nicpool-test"
	podIfName  = "eth0"
	testPoolA  = "10.240.0.10"
	testPoolB  = "10.240.0.11"
	testPoolC  = "10.240.0.12"
	testPoolD  = "10.240.0.13"
	defaultTTL = 5
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nicpool-cni-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create plugin dir:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "nicpool"), "github.com/nicpool/nicpool/cmd/nicpool")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build nicpool plugin:", err)
		return 1
	}
	pluginDir = dir
	return m.Run()
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// newNS creates a network namespace removed when the test ends.
func newNS(t testing.TB) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		// A test that removed the namespace itself leaves nothing to unmount.
		if _, err := os.Stat(n.Path()); os.IsNotExist(err) {
			return
		}
		if err := testutils.UnmountNS(n); err != nil {
			t.Errorf("remove netns %s: %v", n.Path(), err)
		}
	})
	return n
}

// testbed is one simulated node: a node namespace with an uplink, a fake
// agent and a libcni client.
type testbed struct {
	t      testing.TB
	node   ns.NetNS
	agent  *fakeagent.Agent
	socket string
	cni    *libcni.CNIConfig
}

func newTestbed(t testing.TB, ips ...string) *testbed {
	t.Helper()
	requireRoot(t)
	// A short path: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "np")
	if err != nil {
		t.Fatalf("create temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "agent.sock")
	agent, err := fakeagent.Start(t.Context(), socket, ips)
	if err != nil {
		t.Fatalf("start fake agent: %v", err)
	}
	t.Cleanup(func() { _ = agent.Close() })
	tb := &testbed{
		t:      t,
		node:   newNS(t),
		agent:  agent,
		socket: socket,
		cni:    libcni.NewCNIConfigWithCacheDir([]string{pluginDir, referencePluginDir}, filepath.Join(dir, "cache"), nil),
	}
	tb.inNode(setupUplink)
	return tb
}

// setupUplink gives the node namespace an "eth0" with the node IP, a
// smaller MTU than the veth default and a default route, like a VM's NIC.
// Its peer stays in the same namespace, so nothing leaves it.
func setupUplink() error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "eth0"
	attrs.MTU = uplinkMTU
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "fabric0"}); err != nil {
		return fmt.Errorf("add uplink: %w", err)
	}
	for _, name := range []string{"lo", "eth0", "fabric0"} {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
	}
	eth0, err := netlink.LinkByName("eth0")
	if err != nil {
		return err
	}
	addr, _ := netlink.ParseAddr(nodeIP + "/24")
	if err := netlink.AddrAdd(eth0, addr); err != nil {
		return fmt.Errorf("add node ip: %w", err)
	}
	return netlink.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("10.240.0.1")})
}

// inNode runs fn on a thread inside the node namespace; child processes
// (the plugins libcni executes) inherit it.
func (tb *testbed) inNode(fn func() error) {
	tb.t.Helper()
	if err := tb.node.Do(func(ns.NetNS) error { return fn() }); err != nil {
		tb.t.Fatal(err)
	}
}

// nodeErr is inNode for calls whose error the test inspects.
func (tb *testbed) nodeErr(fn func() error) error {
	return tb.node.Do(func(ns.NetNS) error { return fn() })
}

// confList builds a conflist with nicpool first and extra plugins after it.
func (tb *testbed) confList(version string, extra ...map[string]any) *libcni.NetworkConfigList {
	tb.t.Helper()
	plugins := append([]map[string]any{{"type": "nicpool", "agentSocket": tb.socket, "timeoutSeconds": defaultTTL}}, extra...)
	b, err := json.Marshal(map[string]any{"cniVersion": version, "name": netName, "plugins": plugins})
	if err != nil {
		tb.t.Fatal(err)
	}
	list, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		tb.t.Fatalf("parse conflist: %v", err)
	}
	return list
}

func runtimeConf(containerID string, netns ns.NetNS) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       netns.Path(),
		IfName:      podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", "default"},
			{"K8S_POD_NAME", "pod-" + containerID},
			{"K8S_POD_UID", "uid-" + containerID},
		},
	}
}

func (tb *testbed) add(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (res any, err error) {
	err = tb.nodeErr(func() error {
		r, err := tb.cni.AddNetworkList(context.Background(), list, rt)
		res = r
		return err
	})
	return res, err
}

func (tb *testbed) del(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return tb.nodeErr(func() error { return tb.cni.DelNetworkList(context.Background(), list, rt) })
}

func (tb *testbed) check(list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return tb.nodeErr(func() error { return tb.cni.CheckNetworkList(context.Background(), list, rt) })
}

// nodeState is what the node namespace holds for one attachment.
type nodeState struct {
	vethExists bool
	proxyARP   string // net.ipv4.conf.<veth>.proxy_arp
	routeTo    string // interface the /32 route to the IP leaves through
}

func (tb *testbed) state(containerID, ip string) nodeState {
	tb.t.Helper()
	var st nodeState
	tb.inNode(func() error {
		name := hostVethName(agentapi.AttachmentKey{ContainerID: containerID, IfName: podIfName})
		if _, err := netlink.LinkByName(name); err == nil {
			st.vethExists = true
			// /proc/sys/net follows the reading thread's namespace.
			v, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + name + "/proxy_arp")
			if err != nil {
				return err
			}
			st.proxyARP = strings.TrimSpace(string(v))
		}
		if ip == "" {
			return nil
		}
		routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
			&netlink.Route{Dst: hostPrefix(net.ParseIP(ip))}, netlink.RT_FILTER_DST)
		if err != nil {
			return err
		}
		for _, r := range routes {
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err == nil {
				st.routeTo = l.Attrs().Name
			}
		}
		return nil
	})
	return st
}

// npLinks lists the host veths nicpool could have created.
func (tb *testbed) npLinks() []string {
	tb.t.Helper()
	var names []string
	tb.inNode(func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if len(l.Attrs().Name) > 2 && l.Attrs().Name[:2] == "np" {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	return names
}

func mustIP(s string) net.IP {
	ip := net.ParseIP(s)
	if ip == nil {
		panic("bad test ip " + s)
	}
	return ip
}
