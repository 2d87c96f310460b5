package cni

import (
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// addInProcess runs CmdAdd inside the node namespace without libcni, so
// the afterStep seam can inject failures.
func (tb *testbed) addInProcess(containerID string, pod ns.NetNS) error {
	tb.t.Helper()
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": netName, "type": "nicpool",
		"agentSocket": tb.socket, "timeoutSeconds": defaultTTL,
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	return tb.nodeErr(func() error {
		return CmdAdd(&skel.CmdArgs{
			ContainerID: containerID, Netns: pod.Path(), IfName: podIfName,
			Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p", StdinData: conf,
		})
	})
}

// assertNothingLeft checks that a failed ADD left no veth, no route, no
// allocation and no pod interface.
func (tb *testbed) assertNothingLeft(t *testing.T, pod ns.NetNS) {
	t.Helper()
	if links := tb.npLinks(); len(links) != 0 {
		t.Errorf("host veths %v left", links)
	}
	if st := tb.state("none", testPoolA); st.routeTo != "" {
		t.Errorf("host route to %s via %s left", testPoolA, st.routeTo)
	}
	if held := tb.agent.Held(); len(held) != 0 {
		t.Errorf("allocations %v left", held)
	}
	err := pod.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName(podIfName); err == nil {
			t.Errorf("pod interface %s left", podIfName)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAddRollsBackAtEveryStep(t *testing.T) {
	steps := []string{stepAllocate, stepVeth, stepPod, stepHost, stepRoute, stepResult}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			tb := newTestbed(t, testPoolA)
			pod := newNS(t)
			injected := errors.New("injected failure at " + step)
			afterStep = func(s string) error {
				if s == step {
					return injected
				}
				return nil
			}
			oldStdout := stdout
			stdout = io.Discard
			t.Cleanup(func() {
				afterStep = func(string) error { return nil }
				stdout = oldStdout
			})
			err := tb.addInProcess("ctr-fail-"+step, pod)
			if !errors.Is(err, injected) {
				t.Fatalf("ADD returned %v, want the injected failure", err)
			}
			tb.assertNothingLeft(t, pod)
		})
	}
}

func TestAddFailuresLeaveNothing(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(t *testing.T, tb *testbed, pod ns.NetNS, key agentapi.AttachmentKey)
		wantCode uint
		survivor func(tb *testbed, pod ns.NetNS) error // pre-existing link that must survive
	}{
		{
			name: "agent has no ip",
			prepare: func(t *testing.T, tb *testbed, _ ns.NetNS, _ agentapi.AttachmentKey) {
				tb.agent.FailAllocate(&agentapi.Error{Code: agentapi.CodeTryAgainLater, Message: "pool empty"})
			},
			wantCode: types.ErrTryAgainLater,
		},
		{
			name: "interface name taken in pod",
			prepare: func(t *testing.T, _ *testbed, pod ns.NetNS, _ agentapi.AttachmentKey) {
				err := pod.Do(func(ns.NetNS) error { return addVeth(podIfName, "other0") })
				if err != nil {
					t.Fatal(err)
				}
			},
			wantCode: types.ErrInternal,
			survivor: func(_ *testbed, pod ns.NetNS) error {
				return pod.Do(func(ns.NetNS) error { _, err := netlink.LinkByName(podIfName); return err })
			},
		},
		{
			name: "host name taken by a foreign link",
			prepare: func(t *testing.T, tb *testbed, _ ns.NetNS, key agentapi.AttachmentKey) {
				tb.inNode(func() error {
					attrs := netlink.NewLinkAttrs()
					attrs.Name = hostVethName(key)
					return netlink.LinkAdd(&netlink.Ifb{LinkAttrs: attrs})
				})
			},
			wantCode: types.ErrInternal,
			survivor: func(tb *testbed, _ ns.NetNS) error {
				return tb.nodeErr(func() error {
					_, err := netlink.LinkByName(hostVethName(agentapi.AttachmentKey{ContainerID: "ctr-conflict", IfName: podIfName}))
					return err
				})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTestbed(t, testPoolA)
			pod := newNS(t)
			rt := runtimeConf("ctr-conflict", pod)
			tt.prepare(t, tb, pod, agentapi.AttachmentKey{Network: netName, ContainerID: rt.ContainerID, IfName: podIfName})
			_, err := tb.add(tb.confList("1.1.0"), rt)
			assertCode(t, err, tt.wantCode)
			if held := tb.agent.Held(); len(held) != 0 {
				t.Errorf("allocations %v left", held)
			}
			if st := tb.state(rt.ContainerID, testPoolA); st.routeTo != "" {
				t.Errorf("host route left via %s", st.routeTo)
			}
			if tt.survivor != nil {
				if err := tt.survivor(tb, pod); err != nil {
					t.Errorf("pre-existing link was removed: %v", err)
				}
			} else if links := tb.npLinks(); len(links) != 0 {
				t.Errorf("host veths %v left", links)
			}
		})
	}
}

func addVeth(name, peer string) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	return netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: peer})
}
