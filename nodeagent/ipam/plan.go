package ipam

import (
	"errors"
	"slices"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/metrics"
)

// SpecPlan is the spec the agent wants on its NodeIPPool.
type SpecPlan struct {
	// Requested is spec.requestedIPCount: the IPs the agent wants to keep,
	// not counting those in NotInUse.
	Requested int
	// NotInUse is spec.ipsNotInUse, sorted: IPs the agent will never hand
	// out again, limited to those still in status.ips.
	NotInUse []string
}

// PlanSpec decides the pool's spec now: the policy's target for the IPs in
// use plus waiting allocations, and which idle IPs to give back. IPs chosen
// for release stop being handed out before PlanSpec returns (release phase
// 1 starts locally, before the spec is written); they stay withheld until
// the spec shows them. ok is false before the pool was first observed.
func (a *Allocator) PlanSpec() (plan SpecPlan, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.synced || !a.pool.Found {
		return SpecPlan{}, false
	}
	now := a.cfg.Now()
	held := a.heldLocked()
	// Pending demand: allocations waiting now, or the pods bound to the node
	// that hold no IP yet, whichever is more (a pod's ADD may not have
	// arrived yet; an attachment of a pod the API does not show still waits).
	pending := max(a.waiters, a.boundPods-len(held))
	target := pool.Target(a.cfg.Policy, len(held), pending)
	usable := 0
	var free []pool.IdleIP
	for ip := range a.statusIPs {
		if !a.usableLocked(ip) {
			continue
		}
		usable++
		if !held[ip] {
			free = append(free, pool.IdleIP{IP: ip, IdleSince: a.idleSince[ip]})
		}
	}
	if target > a.pool.Requested && target > usable {
		a.lastScaleUp = now
	}
	release := pool.SelectRelease(a.cfg.Policy, pool.ReleaseInput{
		Now: now, Usable: usable, Target: target, LastScaleUp: a.lastScaleUp, Free: free,
		FairShare: a.pool.FairShare,
	})
	for _, ip := range release {
		a.releasing[ip] = true
	}
	a.cfg.Metrics.PoolReleased(len(release))
	a.requested = target
	var notInUse []string
	for ip := range a.statusIPs {
		// Never list an IP a pod holds, even if someone else put it in the spec.
		if (a.specUnused[ip] || a.releasing[ip]) && !held[ip] {
			notInUse = append(notInUse, ip)
		}
	}
	slices.Sort(notInUse)
	return SpecPlan{Requested: target, NotInUse: notInUse}, true
}

// Status answers the plugin's status call.
func (a *Allocator) Status() agentapi.StatusResponse {
	s := a.Snapshot()
	resp := agentapi.StatusResponse{Ready: true, Capacity: s.Usable, Allocated: s.Allocated, Free: s.Free}
	if ok, reason := a.Ready(); !ok {
		resp.Ready, resp.Reason = false, reason
	}
	return resp
}

// Ready reports whether the node can serve pods: its pool was observed and
// has at least one usable IP. The CNI config is installed only while ready.
func (a *Allocator) Ready() (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case !a.synced:
		return false, "the agent has not read its NodeIPPool yet"
	case !a.pool.Found:
		return false, "the node's NodeIPPool does not exist"
	}
	for ip := range a.statusIPs {
		if a.usableLocked(ip) {
			return true, ""
		}
	}
	return false, "the node's pool has no usable IP yet (status.ips is empty)"
}

// Changed returns a channel closed at the next change of the pool or of an
// allocation; with Ready it tells when the pool has IPs to give.
func (a *Allocator) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

// Snapshot returns the counts the metrics export.
func (a *Allocator) Snapshot() metrics.Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	held := a.heldLocked()
	s := metrics.Snapshot{PoolIPs: len(a.statusIPs), Allocated: len(held), Requested: a.requested, Pending: a.waiters}
	for ip := range held {
		if !a.statusIPs[ip] {
			s.HeldOutsidePool++
		}
	}
	for ip := range a.statusIPs {
		if a.usableLocked(ip) {
			s.Usable++
			if !held[ip] {
				s.Free++
			}
		}
	}
	return s
}

// Pool returns the pool as last observed.
func (a *Allocator) Pool() PoolState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pool
}

func joinErrors(errs []error) error { return errors.Join(errs...) }
