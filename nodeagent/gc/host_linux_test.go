package gc

import (
	"context"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nicpool/nicpool/internal/fakeclock"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
)

type agentapiKey = agentapi.AttachmentKey

// testNamespace creates an anonymous network namespace (gone when the test
// closes its handle) and returns a netlink handle into it.
func testNamespace(t *testing.T) *netlink.Handle {
	_, h := testNamespaceHandles(t)
	return h
}

// testNamespaceHandles is testNamespace that also returns the namespace's
// own handle, for code that opens netlink handles into it itself.
func testNamespaceHandles(t *testing.T) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = orig.Close() }()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("return to the original namespace: %v", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); _ = ns.Close() })
	return ns, h
}

func TestRecoverFromHostRoutes(t *testing.T) {
	h := testNamespace(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "np0123456789a"}, PeerName: "podside0"}
	other := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, PeerName: "otherpeer0"}
	for _, v := range []*netlink.Veth{veth, other} {
		if err := h.LinkAdd(v); err != nil {
			t.Fatalf("add veth %s: %v", v.Name, err)
		}
		for _, name := range []string{v.Name, v.PeerName} {
			l, err := h.LinkByName(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	addRoute := func(dev, cidr string) {
		l, err := h.LinkByName(dev)
		if err != nil {
			t.Fatal(err)
		}
		_, dst, _ := net.ParseCIDR(cidr)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
			t.Fatalf("add route %s dev %s: %v", cidr, dev, err)
		}
	}
	addRoute("np0123456789a", "10.5.0.7/32")
	addRoute("other0", "10.5.0.8/32")

	st := store.NewMemStore()
	n, err := RecoverFromHost(h, st, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("RecoverFromHost = %d, %v; want 1 record", n, err)
	}
	recs := st.List()
	if recs[0].IP != "10.5.0.7" || recs[0].ContainerID != RecoveredPrefix+"np0123456789a" {
		t.Errorf("recovered %+v", recs[0])
	}

	// While the veth exists the recovered record stays; once it is gone,
	// the periodic GC releases it.
	clk := fakeclock.New(time.Now().Add(time.Hour))
	rel := &recordingReleaser{st: st}
	c := New(rel, Config{Now: clk.Now, Grace: time.Second, LinkExists: HostLinks(h), Pods: func(context.Context) ([]Pod, error) { return nil, nil }})
	if err := c.RunOnce(context.Background()); err != nil || len(st.List()) != 1 {
		t.Fatalf("RunOnce with the veth present: %v, records %v", err, st.List())
	}
	l, _ := h.LinkByName("np0123456789a")
	if err := h.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	if err := c.RunOnce(context.Background()); err != nil || len(st.List()) != 0 {
		t.Fatalf("RunOnce with the veth gone: %v, records %v", err, st.List())
	}
}

// recordingReleaser applies ReleaseUnless to a store directly.
type recordingReleaser struct{ st store.Store }

func (r *recordingReleaser) ReleaseUnless(keep func(store.Record) bool, _ time.Duration) ([]agentapiKey, error) {
	var out []agentapiKey
	for _, rec := range r.st.List() {
		if !keep(rec) {
			if _, _, err := r.st.Remove(rec.AttachmentKey); err != nil {
				return out, err
			}
			out = append(out, rec.AttachmentKey)
		}
	}
	return out, nil
}
