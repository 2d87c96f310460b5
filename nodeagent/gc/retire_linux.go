package gc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

// RetiredAlias is the alias (IFLA_IFALIAS) of a host veth whose pod's DEL
// the agent has answered and whose deletion it has not finished. The
// kernel keeps it across an agent crash, so the agent restarted after a
// kill -9 finds the veths it still owes a delete (SweepRetired).
const RetiredAlias = "nicpool:retired"

// HostVeths deletes pods' host veths for the plugin's DEL. It opens a
// netlink handle per call, so concurrent DELs never share a socket.
type HostVeths struct {
	// Handle opens a netlink handle into the node's namespace;
	// netlink.NewHandle (the agent's own namespace) when nil.
	Handle func() (*netlink.Handle, error)
	// Log receives deletes that had to be retried.
	Log logr.Logger
	// Backoff is the first wait between attempts of Delete (100 ms if
	// zero); it quadruples up to five attempts.
	Backoff time.Duration
}

// open returns a fresh netlink handle into the node's namespace.
func (v HostVeths) open() (*netlink.Handle, error) {
	open := v.Handle
	if open == nil {
		open = func() (*netlink.Handle, error) { return netlink.NewHandle() }
	}
	h, err := open()
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return h, nil
}

// lookupVeth returns the named host veth; nil when there is none or the name
// belongs to a link that is not a veth (not nicpool's, left alone).
func lookupVeth(h *netlink.Handle, name string) (*netlink.Veth, error) {
	link, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up host interface %s: %w", name, err)
	}
	veth, ok := link.(*netlink.Veth)
	if !ok {
		return nil, nil
	}
	return veth, nil
}

// Retire marks the named host veth as owed a delete (RetiredAlias) and
// reports whether there was one. It costs one netlink request, no RCU
// grace period.
func (v HostVeths) Retire(name string) (bool, error) {
	h, err := v.open()
	if err != nil {
		return false, err
	}
	defer h.Close()
	veth, err := lookupVeth(h, name)
	if err != nil || veth == nil {
		return false, err
	}
	if err := h.LinkSetAlias(veth, RetiredAlias); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return false, nil
		}
		return false, fmt.Errorf("mark host veth %s retired: %w", name, err)
	}
	return true, nil
}

// Delete removes the named host veth (its pod end and its /32 route go
// with it); a missing one is success. It tries five times with growing
// waits before it gives up.
func (v HostVeths) Delete(name string) error {
	wait := v.Backoff
	if wait <= 0 {
		wait = 100 * time.Millisecond
	}
	var err error
	for attempt := 1; ; attempt++ {
		if err = v.deleteVeth(name); err == nil || attempt == 5 {
			return err
		}
		v.Log.Info("Retrying the delete of a host veth", "veth", name, "attempt", attempt, "error", err.Error())
		time.Sleep(wait)
		wait *= 4
	}
}

func (v HostVeths) deleteVeth(name string) error {
	h, err := v.open()
	if err != nil {
		return err
	}
	defer h.Close()
	veth, err := lookupVeth(h, name)
	if err != nil || veth == nil {
		return err
	}
	if err := h.LinkDel(veth); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("delete host veth %s: %w", name, err)
	}
	return nil
}

// RetiredReleaser is what SweepRetired needs from the allocator.
type RetiredReleaser interface {
	Records() []store.Record
	Release(key agentapi.AttachmentKey) (string, error)
}

// SweepRetired finishes the DELs an earlier agent answered and did not
// complete (it was killed between answering and deleting): every host veth
// marked RetiredAlias is deleted, then the record of its attachment is
// released. Run it before serving. It returns how many veths it deleted.
func (v HostVeths) SweepRetired(alloc RetiredReleaser) (int, error) {
	h, err := v.open()
	if err != nil {
		return 0, err
	}
	links, err := h.LinkList()
	h.Close()
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		// The list may miss a veth that changed meanwhile; the next start
		// or the GC sees it.
		err = nil
	}
	if err != nil {
		return 0, fmt.Errorf("list host interfaces: %w", err)
	}
	byVeth := map[string]agentapi.AttachmentKey{}
	for _, r := range alloc.Records() {
		byVeth[vethOf(r)] = r.AttachmentKey
	}
	deleted := 0
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		if !strings.HasPrefix(name, vethname.Prefix) || l.Type() != "veth" || l.Attrs().Alias != RetiredAlias {
			continue
		}
		if err := v.deleteVeth(name); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
		if key, ok := byVeth[name]; ok {
			if _, err := alloc.Release(key); err != nil {
				errs = append(errs, fmt.Errorf("release the ip of retired veth %s: %w", name, err))
			}
		}
	}
	return deleted, errors.Join(errs...)
}
