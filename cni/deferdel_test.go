package cni

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	agentgc "github.com/nicpool/nicpool/nodeagent/gc"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/server"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// gatedVeths deletes host veths in the node namespace only once the test
// opens its gate: the agent's background delete, held where the test wants.
type gatedVeths struct {
	agentgc.HostVeths
	gate chan struct{}
}

func (g gatedVeths) Delete(name string) error {
	<-g.gate
	return g.HostVeths.Delete(name)
}

// TestDelLeavesTheVethToTheAgent runs the plugin against the real agent
// server and allocator: DEL answers before the host veth is deleted (the
// kernel's slow part), the pod's interface name is free at once for the
// next ADD into the same namespace, and the IP stays held until the agent
// has deleted the veth, so it never reaches another pod while a route to
// the old one exists.
func TestDelLeavesTheVethToTheAgent(t *testing.T) {
	requireRoot(t)
	dir, err := os.MkdirTemp("", "np")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	node := newNS(t)
	if err := node.Do(func(ns.NetNS) error { return setupUplink() }); err != nil {
		t.Fatal(err)
	}
	nodeHandle, err := netns.GetFromPath(node.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nodeHandle.Close() })
	veths := gatedVeths{HostVeths: agentgc.HostVeths{Handle: func() (*netlink.Handle, error) { return netlink.NewHandleAt(nodeHandle) }}, gate: make(chan struct{})}
	alloc := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.Config{WarmIPTarget: 1, MinIPTarget: 1, BatchSize: 1, MaxIPs: 250}})
	alloc.UpdatePool(ipam.PoolState{Found: true, IPs: []string{testPoolA, testPoolB}})
	socket := filepath.Join(dir, "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- server.New(alloc, server.Config{SocketPath: socket, Veths: veths, Log: logr.Discard()}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-served })
	tb := &testbed{t: t, node: node, socket: socket,
		cni: libcni.NewCNIConfigWithCacheDir([]string{pluginDir}, filepath.Join(dir, "cache"), nil)}
	// The socket appears once the server listens; bounded by the agent
	// client's own timeout (5 s) in the first ADD otherwise.
	waitFor(t, 30*time.Second, "the agent's socket", func() bool { _, err := os.Stat(socket); return err == nil })

	list := tb.confList("1.1.0")
	pod := newNS(t)
	first := runtimeConf("ctr-first", pod)
	if _, err := tb.add(list, first); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	firstIP := ipOf(t, alloc, first)
	if err := tb.del(list, first); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	// DEL has answered; the agent's delete waits at the gate.
	host := hostVethName(agentapi.AttachmentKey{ContainerID: first.ContainerID, IfName: podIfName})
	if st := tb.state(first.ContainerID, ""); !st.vethExists {
		t.Fatalf("the host veth %s is gone when DEL answers: DEL waited for the kernel's delete", host)
	}
	if _, held := alloc.Check(agentapi.AttachmentKey{Network: netName, ContainerID: first.ContainerID, IfName: podIfName}); !held {
		t.Fatalf("the IP %s was released while its veth still exists", firstIP)
	}
	second := runtimeConf("ctr-second", pod)
	if _, err := tb.add(list, second); err != nil {
		t.Fatalf("ADD into the same namespace right after DEL: %v", err)
	}
	if got := ipOf(t, alloc, second); got == firstIP {
		t.Fatalf("the second pod got %s, still held by the first pod's veth", got)
	}
	close(veths.gate)
	// Bounded: the delete and one in-memory removal, on a loaded machine.
	waitFor(t, 30*time.Second, "the agent to delete the veth and release the IP", func() bool {
		_, held := alloc.Check(agentapi.AttachmentKey{Network: netName, ContainerID: first.ContainerID, IfName: podIfName})
		return !held && !tb.state(first.ContainerID, "").vethExists
	})
	if err := tb.del(list, second); err != nil {
		t.Fatalf("DEL of the second pod: %v", err)
	}
	// The agent's background work ends before the namespaces go.
	waitFor(t, 30*time.Second, "the second pod's release", func() bool {
		_, held := alloc.Check(agentapi.AttachmentKey{Network: netName, ContainerID: second.ContainerID, IfName: podIfName})
		return !held
	})
}

func ipOf(t *testing.T, alloc *ipam.Allocator, rt *libcni.RuntimeConf) string {
	t.Helper()
	rec, ok := alloc.Check(agentapi.AttachmentKey{Network: netName, ContainerID: rt.ContainerID, IfName: rt.IfName})
	if !ok {
		t.Fatalf("the agent holds nothing for %s", rt.ContainerID)
	}
	return rec.IP
}

// waitFor polls cond every 10 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
