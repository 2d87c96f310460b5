package cni

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
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
			if st := tb.state(rt.ContainerID, testPoolA); !st.vethExists || st.routeTo != wantHost || st.proxyARP != "1" {
				t.Errorf("node state %+v, want veth with proxy_arp 1 and route via %s", st, wantHost)
			}
			assertPodMTU(t, pod, uplinkMTU)
			rec, ok := tb.agent.Record(agentapi.AttachmentKey{Network: netName, ContainerID: rt.ContainerID, IfName: podIfName})
			if !ok || rec.PodNamespace != "default" || rec.PodName != "pod-"+rt.ContainerID || rec.PodUID != "uid-"+rt.ContainerID || rec.NetNS != pod.Path() {
				t.Errorf("agent record %+v, want network %s, pod default/pod-%s (UID uid-%[3]s) in %s", rec, netName, rt.ContainerID, pod.Path())
			}
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
	logFile := filepath.Join(t.TempDir(), "nicpool.log")
	plugin, err := libcni.InjectConf(list.Plugins[0], map[string]any{"logFile": logFile})
	if err != nil {
		t.Fatal(err)
	}
	list.Plugins[0] = plugin
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
	logged, err := os.ReadFile(logFile)
	if err != nil || strings.Count(string(logged), "Verb succeeded") < 2 {
		t.Errorf("log file %s holds %q (%v), want two successful ADDs", logFile, logged, err)
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
// gcAll releases every allocation of the test network (an empty valid list;
// a missing one is refused).
func gcAll(tb *testbed) error {
	_, err := agentapi.NewClient(tb.socket).GC(context.Background(), agentapi.GCRequest{Network: netName, ValidAttachments: []agentapi.AttachmentKey{}})
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

func TestConfiguredMTU(t *testing.T) {
	tb := newTestbed(t, testPoolA)
	list := tb.confList("1.1.0")
	plugin, err := libcni.InjectConf(list.Plugins[0], map[string]any{"mtu": 1300})
	if err != nil {
		t.Fatal(err)
	}
	list.Plugins[0] = plugin
	pod := newNS(t)
	if _, err := tb.add(list, runtimeConf("ctr-mtu", pod)); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	assertPodMTU(t, pod, 1300)
}
