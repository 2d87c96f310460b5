package cni

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// asCurrent converts whatever version libcni returned to a 1.1.0 result.
func asCurrent(t *testing.T, res any) *current.Result {
	t.Helper()
	r, ok := res.(types.Result)
	if !ok {
		t.Fatalf("ADD returned %T, not a types.Result", res)
	}
	cur, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatalf("convert result: %v", err)
	}
	return cur
}

func TestAddCheckDelEveryVersion(t *testing.T) {
	for _, v := range VersionInfo().SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			tb := newTestbed(t, testPoolA)
			pod := newNS(t)
			list := tb.confList(v)
			rt := runtimeConf("ctr-"+v, pod)
			res, err := tb.add(list, rt)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if got := res.(types.Result).Version(); got != v {
				t.Errorf("result version %s, want %s", got, v)
			}
			r := asCurrent(t, res)
			wantHost := hostVethName(agentapi.AttachmentKey{ContainerID: rt.ContainerID, IfName: podIfName})
			if len(r.Interfaces) != 2 || r.Interfaces[0].Name != wantHost || r.Interfaces[1].Sandbox != pod.Path() {
				t.Fatalf("interfaces %v, want host %s and %s in %s", r.Interfaces, wantHost, podIfName, pod.Path())
			}
			if len(r.IPs) != 1 || r.IPs[0].Address.String() != testPoolA+"/32" || *r.IPs[0].Interface != 1 {
				t.Fatalf("ips %v, want %s/32 on interface 1", r.IPs, testPoolA)
			}
			if len(r.Routes) != 1 || r.Routes[0].Dst.String() != "0.0.0.0/0" || !r.Routes[0].GW.Equal(gatewayIP) {
				t.Errorf("routes %v, want default via %s", r.Routes, gatewayIP)
			}
			if st := tb.state(rt.ContainerID, testPoolA); !st.vethExists || st.routeTo != wantHost {
				t.Errorf("node state %+v, want veth and route via %s", st, wantHost)
			}
			assertPodMTU(t, pod, uplinkMTU)
			if gte, _ := version.GreaterThanOrEqualTo(v, "0.4.0"); gte {
				if err := tb.check(list, rt); err != nil {
					t.Errorf("CHECK: %v", err)
				}
			}
			if err := tb.del(list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if st := tb.state(rt.ContainerID, testPoolA); st.vethExists || st.routeTo != "" {
				t.Errorf("after DEL node state %+v, want nothing", st)
			}
			if held := tb.agent.Held(); len(held) != 0 {
				t.Errorf("after DEL agent holds %v", held)
			}
		})
	}
}

func assertPodMTU(t *testing.T, pod ns.NetNS, want int) {
	t.Helper()
	err := pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(podIfName)
		if err != nil {
			return err
		}
		if l.Attrs().MTU != want {
			t.Errorf("pod mtu %d, want %d (the uplink's)", l.Attrs().MTU, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPingPodToPodAndNode(t *testing.T) {
	tb := newTestbed(t, testPoolA, testPoolB)
	list := tb.confList("1.1.0")
	podA, podB := newNS(t), newNS(t)
	if _, err := tb.add(list, runtimeConf("ctr-a", podA)); err != nil {
		t.Fatalf("ADD a: %v", err)
	}
	if _, err := tb.add(list, runtimeConf("ctr-b", podB)); err != nil {
		t.Fatalf("ADD b: %v", err)
	}
	tests := []struct {
		name     string
		from     ns.NetNS
		src, dst string
	}{
		{"pod a to pod b", podA, testPoolA, testPoolB},
		{"pod b to pod a", podB, testPoolB, testPoolA},
		{"pod a to node", podA, testPoolA, nodeIP},
		{"node to pod b", tb.node, nodeIP, testPoolB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ping(tt.from, tt.src, tt.dst); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRepeatedAddIsIdempotent(t *testing.T) {
	tb := newTestbed(t, testPoolA, testPoolB)
	list := tb.confList("1.0.0")
	pod := newNS(t)
	rt := runtimeConf("ctr-repeat", pod)
	first, err := tb.add(list, rt)
	if err != nil {
		t.Fatalf("first ADD: %v", err)
	}
	second, err := tb.add(list, rt)
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	a, b := asCurrent(t, first), asCurrent(t, second)
	if a.IPs[0].Address.String() != b.IPs[0].Address.String() {
		t.Errorf("second ADD got %s, first %s", b.IPs[0].Address.String(), a.IPs[0].Address.String())
	}
	if links := tb.npLinks(); len(links) != 1 {
		t.Errorf("host veths %v, want exactly one", links)
	}
	if held := tb.agent.Held(); len(held) != 1 {
		t.Errorf("agent holds %v, want one attachment", held)
	}
	if err := tb.check(list, rt); err != nil {
		t.Errorf("CHECK after repeated ADD: %v", err)
	}
	if err := ping(pod, testPoolA, nodeIP); err != nil {
		t.Errorf("after repeated ADD: %v", err)
	}
}

func TestDelIsIdempotent(t *testing.T) {
	tests := []struct {
		name   string
		before func(t *testing.T, tb *testbed, pod ns.NetNS, rt *libcni.RuntimeConf)
	}{
		{"twice", func(t *testing.T, tb *testbed, pod ns.NetNS, rt *libcni.RuntimeConf) {
			if err := tb.del(tb.confList("1.1.0"), rt); err != nil {
				t.Fatalf("first DEL: %v", err)
			}
		}},
		{"netns gone", func(t *testing.T, tb *testbed, pod ns.NetNS, rt *libcni.RuntimeConf) {
			_ = pod.Close()
			if err := testutils.UnmountNS(pod); err != nil {
				t.Fatalf("remove pod netns: %v", err)
			}
		}},
		{"allocation gone", func(t *testing.T, tb *testbed, pod ns.NetNS, rt *libcni.RuntimeConf) {
			tb.inNode(func() error { return gcAll(tb) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestbed(t, testPoolA)
			list := tb.confList("1.1.0")
			pod := newNS(t)
			rt := runtimeConf("ctr-del", pod)
			if _, err := tb.add(list, rt); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			tt.before(t, tb, pod, rt)
			if err := tb.del(list, rt); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			if st := tb.state(rt.ContainerID, testPoolA); st.vethExists || st.routeTo != "" {
				t.Errorf("node state %+v after DEL, want nothing", st)
			}
			if held := tb.agent.Held(); len(held) != 0 {
				t.Errorf("agent holds %v after DEL", held)
			}
		})
	}
}

// gcAll releases every allocation behind the plugin's back.
func gcAll(tb *testbed) error {
	_, err := agentapi.NewClient(tb.socket).GC(context.Background(), agentapi.GCRequest{})
	return err
}

func TestCheckDetectsDrift(t *testing.T) {
	tests := []struct {
		name  string
		drift func(tb *testbed, pod ns.NetNS) error
	}{
		{"neighbor removed", func(tb *testbed, pod ns.NetNS) error {
			return pod.Do(func(ns.NetNS) error {
				l, err := netlink.LinkByName(podIfName)
				if err != nil {
					return err
				}
				return netlink.NeighDel(&netlink.Neigh{LinkIndex: l.Attrs().Index, IP: gatewayIP, Family: netlink.FAMILY_V4})
			})
		}},
		{"host route removed", func(tb *testbed, pod ns.NetNS) error {
			return tb.nodeErr(func() error {
				return netlink.RouteDel(&netlink.Route{Dst: hostPrefix(mustIP(testPoolA)), Scope: netlink.SCOPE_LINK})
			})
		}},
		{"allocation released", func(tb *testbed, pod ns.NetNS) error { return gcAll(tb) }},
		{"pod address removed", func(tb *testbed, pod ns.NetNS) error {
			return pod.Do(func(ns.NetNS) error {
				l, err := netlink.LinkByName(podIfName)
				if err != nil {
					return err
				}
				return netlink.AddrDel(l, &netlink.Addr{IPNet: hostPrefix(mustIP(testPoolA))})
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestbed(t, testPoolA)
			list := tb.confList("1.1.0")
			pod := newNS(t)
			rt := runtimeConf("ctr-check", pod)
			if _, err := tb.add(list, rt); err != nil {
				t.Fatalf("ADD: %v", err)
			}
			if err := tb.check(list, rt); err != nil {
				t.Fatalf("CHECK before drift: %v", err)
			}
			if err := tt.drift(tb, pod); err != nil {
				t.Fatalf("drift: %v", err)
			}
			if err := tb.check(list, rt); err == nil {
				t.Errorf("CHECK after %s succeeded, want an error", tt.name)
			}
		})
	}
}

func TestGCReleasesInvalidAttachments(t *testing.T) {
	tb := newTestbed(t, testPoolA, testPoolB)
	list := tb.confList("1.1.0")
	keep, drop := newNS(t), newNS(t)
	keepRT, dropRT := runtimeConf("ctr-keep", keep), runtimeConf("ctr-drop", drop)
	for _, rt := range []*libcni.RuntimeConf{keepRT, dropRT} {
		if _, err := tb.add(list, rt); err != nil {
			t.Fatalf("ADD %s: %v", rt.ContainerID, err)
		}
	}
	// An empty result cache: only the plugin's own GC can clean up, as after
	// a runtime restart that lost its cache.
	gcClient := libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, t.TempDir(), nil)
	err := tb.nodeErr(func() error {
		return gcClient.GCNetworkList(context.Background(), list, &libcni.GCArgs{
			ValidAttachments: []types.GCAttachment{{ContainerID: keepRT.ContainerID, IfName: podIfName}},
		})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	held := tb.agent.Held()
	if _, ok := held[agentapi.AttachmentKey{ContainerID: keepRT.ContainerID, IfName: podIfName}]; !ok || len(held) != 1 {
		t.Errorf("agent holds %v after GC, want only %s", held, keepRT.ContainerID)
	}
	if st := tb.state(dropRT.ContainerID, ""); st.vethExists {
		t.Errorf("veth of collected attachment still exists")
	}
	if st := tb.state(keepRT.ContainerID, testPoolA); !st.vethExists || st.routeTo == "" {
		t.Errorf("valid attachment damaged by GC: %+v", st)
	}
	if err := ping(keep, testPoolA, nodeIP); err != nil {
		t.Errorf("valid attachment after GC: %v", err)
	}

	t.Run("without valid-attachments GC refuses", func(t *testing.T) {
		err := tb.nodeErr(func() error { return gcClient.GCNetworkList(context.Background(), list, nil) })
		if err == nil {
			t.Fatal("GC without cni.dev/valid-attachments succeeded")
		}
		if len(tb.agent.Held()) != 1 {
			t.Errorf("GC without a list released allocations")
		}
	})
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(tb *testbed)
		wantCode uint // 0 means success
	}{
		{"agent ready", func(*testbed) {}, 0},
		{"agent not ready", func(tb *testbed) { tb.agent.SetReady(false, "no ip in pool") }, types.ErrPluginNotAvailable},
		{"agent down", func(tb *testbed) { _ = tb.agent.Close() }, types.ErrPluginNotAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestbed(t, testPoolA)
			tt.prepare(tb)
			err := tb.nodeErr(func() error { return tb.cni.GetStatusNetworkList(context.Background(), tb.confList("1.1.0")) })
			assertCode(t, err, tt.wantCode)
		})
	}
}

// assertCode checks that err is a CNI error with code want (nil when 0).
func assertCode(t *testing.T, err error, want uint) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return
	}
	var cniErr *types.Error
	if !errors.As(err, &cniErr) {
		t.Fatalf("got %v (%T), want CNI error code %d", err, err, want)
	}
	if cniErr.Code != want {
		t.Fatalf("got code %d (%v), want %d", cniErr.Code, cniErr, want)
	}
}

func TestAddWithAgentDownFailsBounded(t *testing.T) {
	tb := newTestbed(t, testPoolA)
	_ = tb.agent.Close()
	pod := newNS(t)
	_, err := tb.add(tb.confList("1.1.0"), runtimeConf("ctr-down", pod))
	assertCode(t, err, types.ErrTryAgainLater)
	if links := tb.npLinks(); len(links) != 0 {
		t.Errorf("host veths %v left after failed ADD", links)
	}
}

func TestChainedWithPortmapAndBandwidth(t *testing.T) {
	tb := newTestbed(t, testPoolA)
	for _, p := range []string{"portmap", "bandwidth"} {
		if _, err := tb.cni.GetVersionInfo(context.Background(), p); err != nil {
			t.Skipf("reference plugin %s missing (apt-get install containernetworking-plugins): %v", p, err)
		}
	}
	// Debian's reference plugins speak up to 1.0.0.
	list := tb.confList("1.0.0",
		map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}},
	)
	pod := newNS(t)
	rt := runtimeConf("ctr-chain", pod)
	rt.CapabilityArgs = map[string]any{
		"portMappings": []map[string]any{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}},
		"bandwidth":    map[string]any{"ingressRate": 1000000, "ingressBurst": 100000, "egressRate": 1000000, "egressBurst": 100000},
	}
	res, err := tb.add(list, rt)
	if err != nil {
		t.Fatalf("chained ADD: %v", err)
	}
	r := asCurrent(t, res)
	if len(r.IPs) != 1 || r.IPs[0].Address.IP.String() != testPoolA {
		t.Errorf("chained result ips %v, want %s", r.IPs, testPoolA)
	}
	ifbs := tb.linksOfType("ifb")
	if len(ifbs) != 1 {
		t.Errorf("bandwidth plugin made ifb devices %v, want one (it found nicpool's host veth in prevResult)", ifbs)
	}
	tb.inNode(func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		ok, err := ipt.ChainExists("nat", "CNI-HOSTPORT-DNAT")
		if err == nil && !ok {
			t.Errorf("portmap did not program CNI-HOSTPORT-DNAT from nicpool's prevResult")
		}
		return err
	})
	// Debian's portmap 1.1.1 fails CHECK on IPv4-only pods (it also checks
	// ip6tables; fixed upstream later), so CHECK runs nicpool and bandwidth
	// against the cached result of the whole chain.
	checkList := tb.confList("1.0.0", map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}})
	if err := tb.check(checkList, rt); err != nil {
		t.Errorf("chained CHECK: %v", err)
	}
	if err := tb.del(list, rt); err != nil {
		t.Fatalf("chained DEL: %v", err)
	}
	if left := append(tb.npLinks(), tb.linksOfType("ifb")...); len(left) != 0 {
		t.Errorf("links %v left after chained DEL", left)
	}
	if len(tb.agent.Held()) != 0 {
		t.Errorf("allocation left after chained DEL")
	}
}

func (tb *testbed) linksOfType(kind string) []string {
	tb.t.Helper()
	var names []string
	tb.inNode(func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if l.Type() == kind {
				names = append(names, l.Attrs().Name)
			}
		}
		return err
	})
	slices.Sort(names)
	return names
}
