package gc

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

// nodeVeths creates an anonymous network namespace standing for the node
// and returns HostVeths working in it and a handle to inspect it.
func nodeVeths(t *testing.T) (HostVeths, *netlink.Handle) {
	t.Helper()
	node, h := testNamespaceHandles(t)
	return HostVeths{Handle: func() (*netlink.Handle, error) { return netlink.NewHandleAt(node) }, Backoff: 1}, h
}

// storeReleaser releases straight from a store (the allocator's part that
// SweepRetired uses).
type storeReleaser struct{ st store.Store }

func (s storeReleaser) Records() []store.Record { return s.st.List() }
func (s storeReleaser) Release(key agentapi.AttachmentKey) (string, error) {
	r, _, err := s.st.Remove(key)
	return r.IP, err
}

func linkExists(t *testing.T, h *netlink.Handle, name string) bool {
	t.Helper()
	ok, err := HostLinks(h)(name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestSweepRetiredFinishesAnsweredDELs plays an agent killed after it
// answered a DEL (the veth retired) and before it deleted the veth: the next
// agent's sweep deletes that veth and releases its IP, and touches neither
// a live pod's veth and record nor a link that is not a veth.
func TestSweepRetiredFinishesAnsweredDELs(t *testing.T) {
	v, h := nodeVeths(t)
	st := store.NewMemStore()
	keys := []agentapi.AttachmentKey{{ContainerID: "deleted", IfName: "eth0"}, {ContainerID: "live", IfName: "eth0"}}
	for i, k := range keys {
		name := vethname.VethName(k.ContainerID, k.IfName)
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "pod" + k.ContainerID}); err != nil {
			t.Fatalf("add veth %s: %v", name, err)
		}
		if _, err := st.Add(store.Record{Attachment: agentapi.Attachment{AttachmentKey: k}, IP: []string{"10.1.0.1", "10.1.0.2"}[i]}); err != nil {
			t.Fatal(err)
		}
	}
	notVeth := vethname.VethName("dummy", "eth0")
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: notVeth}}); err != nil {
		t.Fatal(err)
	}
	deleted := vethname.VethName("deleted", "eth0")
	for name, want := range map[string]bool{deleted: true, notVeth: false, "np-missing": false} {
		if got, err := v.Retire(name); err != nil || got != want {
			t.Fatalf("Retire(%s) = %t, %v; want %t", name, got, err, want)
		}
	}
	// The agent is killed here; its successor sweeps.
	n, err := v.SweepRetired(storeReleaser{st})
	if err != nil || n != 1 {
		t.Fatalf("SweepRetired = %d, %v; want 1 veth deleted", n, err)
	}
	if linkExists(t, h, deleted) {
		t.Errorf("the retired veth %s survived the sweep", deleted)
	}
	if _, ok := st.Get(keys[0]); ok {
		t.Errorf("the retired veth's IP is still held")
	}
	if _, ok := st.Get(keys[1]); !ok || !linkExists(t, h, vethname.VethName("live", "eth0")) {
		t.Errorf("the sweep touched the live pod's record or veth")
	}
	if err := v.Delete(notVeth); err != nil || !linkExists(t, h, notVeth) {
		t.Errorf("Delete of a link that is not a veth = %v, exists %t; want it left alone", err, linkExists(t, h, notVeth))
	}
}
