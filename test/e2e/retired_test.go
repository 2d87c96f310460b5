package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nicpool/nicpool/nodeagent/gc"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

// TestAgentRestartFinishesAnsweredDELs plays an agent killed after it
// answered a pod's DEL and before it deleted the pod's host veth (the plugin
// hands that delete to the agent): the veth is left retired, its IP still
// recorded, and the pod's namespace still exists because the runtime has not
// removed the sandbox yet. The agent started next must finish that DEL
// before serving (delete the veth, release the IP), while a live pod beside
// it keeps its veth and IP. Without the start-up sweep the record stays held
// for as long as the veth exists, which is a leak.
func TestAgentRestartFinishesAnsweredDELs(t *testing.T) {
	tb := newTestbed(t, 1, nil, nil)
	ctx := context.Background()
	vm := tb.VMs[0]

	deleted, err := tb.StartPod(ctx, vm, "retired")
	if err != nil {
		t.Fatal(err)
	}
	live, err := tb.StartPod(ctx, vm, "live")
	if err != nil {
		t.Fatal(err)
	}
	vm.Agent.Kill()
	t.Log("Killed the agent with SIGKILL; leaving the state of an answered DEL whose veth delete did not happen.")

	h, err := netlink.NewHandleAt(netns.NsHandle(vm.NS.Fd()))
	if err != nil {
		t.Fatalf("open netlink in %s: %v", vm.Name, err)
	}
	defer h.Close()
	retired := vethname.VethName(deleted.ContainerID, "eth0")
	link, err := h.LinkByName(retired)
	if err != nil {
		t.Fatalf("find the host veth %s of pod %s: %v", retired, deleted.Name, err)
	}
	if err := h.LinkSetAlias(link, gc.RetiredAlias); err != nil {
		t.Fatalf("retire %s: %v", retired, err)
	}

	if err := vm.Agent.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The sweep runs before the agent serves; the wait only covers the
	// agent's start on a loaded CI machine.
	deadline := time.Now().Add(60 * time.Second)
	for {
		held, err := tb.AgentAllocations(ctx, vm)
		if err == nil {
			_, stillHeld := held[deleted.IP]
			_, liveHeld := held[live.IP]
			if !liveHeld {
				t.Fatalf("the restarted agent dropped the live pod's IP %s", live.IP)
			}
			if !stillHeld {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted agent still holds %s of the answered DEL (last read error: %v)", deleted.IP, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := h.LinkByName(retired); err == nil {
		t.Errorf("the retired veth %s survived the agent's restart", retired)
	}
	if _, err := h.LinkByName(vethname.VethName(live.ContainerID, "eth0")); err != nil {
		t.Errorf("the live pod's veth is gone: %v", err)
	}
}
