package cni

import (
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// TestVethEndsHaveOneQueue proves ADD creates both veth ends with one TX and
// one RX queue (see createVeth: the kernel's default, one per possible CPU
// shrunk to one, costs an RCU grace period per end under the RTNL lock). On
// a machine with more than one possible CPU it fails without the explicit
// queue counts.
func TestVethEndsHaveOneQueue(t *testing.T) {
	tb := newTestbed(t, testPoolA)
	list := tb.confList("1.1.0")
	pod := newNS(t)
	rt := runtimeConf("ctr-queues", pod)
	if _, err := tb.add(list, rt); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	queues := func(name string) (int, int) {
		l, err := netlink.LinkByName(name)
		if err != nil {
			t.Fatalf("look up %s: %v", name, err)
		}
		return l.Attrs().NumTxQueues, l.Attrs().NumRxQueues
	}
	var hostTx, hostRx, podTx, podRx int
	tb.inNode(func() error {
		hostTx, hostRx = queues(hostVethName(agentapi.AttachmentKey{ContainerID: rt.ContainerID, IfName: podIfName}))
		return nil
	})
	if err := pod.Do(func(ns.NetNS) error { podTx, podRx = queues(podIfName); return nil }); err != nil {
		t.Fatal(err)
	}
	if hostTx != vethQueues || hostRx != vethQueues || podTx != vethQueues || podRx != vethQueues {
		t.Errorf("queues (tx, rx): host end (%d, %d), pod end (%d, %d); want %d each", hostTx, hostRx, podTx, podRx, vethQueues)
	}
}
