package gc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

// HostLinks returns a LinkExists that looks interfaces up through h (the
// host's namespace in production, a test namespace in tests).
func HostLinks(h *netlink.Handle) LinkExists {
	return func(name string) (bool, error) {
		_, err := h.LinkByName(name)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("look up host interface %s: %w", name, err)
		}
		return true, nil
	}
}

// RecoverFromHost rebuilds allocation records from the host's /32 routes to
// nicpool veths (the CNI plugin adds one per pod), after a corrupt state
// file was moved aside. The container ID is not recoverable from the veth
// name, so each record is keyed "recovered.<veth>"; it keeps its IP from
// being handed out until the veth disappears (see RunOnce). It returns how
// many records it added.
func RecoverFromHost(h *netlink.Handle, st store.Store, now time.Time) (int, error) {
	links, err := h.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list host interfaces: %w", err)
	}
	added := 0
	var errs []error
	for _, l := range links {
		name := l.Attrs().Name
		if !strings.HasPrefix(name, vethname.Prefix) || l.Type() != "veth" {
			continue
		}
		routes, err := h.RouteList(l, netlink.FAMILY_V4)
		if err != nil {
			errs = append(errs, fmt.Errorf("list routes of %s: %w", name, err))
			continue
		}
		for _, r := range routes {
			if r.Dst == nil {
				continue
			}
			if ones, bits := r.Dst.Mask.Size(); ones != 32 || bits != 32 {
				continue
			}
			rec := store.Record{
				Attachment:  agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{Network: agentapi.DefaultNetwork, ContainerID: RecoveredPrefix + name, IfName: "eth0"}},
				IP:          r.Dst.IP.String(),
				AllocatedAt: now,
			}
			if _, err := st.Add(rec); err != nil {
				errs = append(errs, fmt.Errorf("recover %s on %s: %w", rec.IP, name, err))
				continue
			}
			added++
		}
	}
	return added, errors.Join(errs...)
}
