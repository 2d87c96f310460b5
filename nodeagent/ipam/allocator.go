// Package ipam is the node agent's allocator: it hands IPs of the node's
// pool to attachments, waits for the pool to grow when it is empty, and
// plans the pool's spec (requestedIPCount and ipsNotInUse) with the policy
// of internal/pool. It does no Kubernetes I/O: the pool syncer feeds it the
// observed pool (UpdatePool) and writes the spec it plans (PlanSpec).
package ipam

import (
	"sync"
	"time"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/metrics"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// DefaultAllocTimeout bounds how long an allocation waits for a free IP.
const DefaultAllocTimeout = 60 * time.Second

// Config tunes the allocator.
type Config struct {
	// Policy is the pool policy (warm and minimum targets, batch, cooldown).
	Policy pool.Config
	// AllocTimeout bounds an allocation's wait; DefaultAllocTimeout if zero.
	AllocTimeout time.Duration
	// Metrics, when not nil, receives allocation metrics.
	Metrics *metrics.Metrics
	// Now returns the time; time.Now if nil (tests pass a fake clock).
	Now func() time.Time
}

// PoolState is the node's NodeIPPool as last observed.
type PoolState struct {
	// Found is false when the NodeIPPool does not exist.
	Found bool
	// IPs are status.ips' addresses.
	IPs []string
	// NotInUse is spec.ipsNotInUse.
	NotInUse []string
	// Requested is spec.requestedIPCount.
	Requested int
	// SubnetCIDR is status.subnetCIDR.
	SubnetCIDR string
	// PrimaryIP is status.primaryIP.
	PrimaryIP string
	// VNetAddressSpace is status.vnetAddressSpace.
	VNetAddressSpace []string
	// ServiceEndpoints are the services of status.subnetServiceEndpoints.
	ServiceEndpoints []string
	// FairShare is status.fairShareIPCount: the operator's cap from the
	// VNet's fair share while it binds the pool, nil otherwise.
	FairShare *int
	// AttachBlocked are IPs with an entry in spec.attachments or an
	// attachment in status.attachments: one not held by a pod is handed out
	// only once its detach is done (see MarkAttachment).
	AttachBlocked []string
	// OwnPublicIP are IPs whose configuration carries a public IP: their
	// pods' traffic leaves without SNAT.
	OwnPublicIP []string
}

// Allocator hands out the pool's IPs. All its state is guarded by mu. An
// allocation picks its IP with mu held and records it with mu released
// (the IP is reserved meanwhile), so "pick a free IP, record it" never
// hands an IP out twice, and concurrent allocations' store writes overlap.
type Allocator struct {
	cfg   Config
	store store.Store

	mu          sync.Mutex
	synced      bool
	pool        PoolState
	statusIPs   map[string]bool
	specUnused  map[string]bool
	releasing   map[string]bool                          // chosen for release, not yet seen in spec.ipsNotInUse
	idleSince   map[string]time.Time                     // free IPs: when they became free
	lastUsed    map[string]time.Time                     // when an attachment last gave the IP back
	reserved    map[string]bool                          // picked, its allocation being written
	busy        map[agentapi.AttachmentKey]chan struct{} // being written; closed when done
	waiters     int
	boundPods   int           // pods on the node that need a pod IP (SetBoundPods)
	changed     chan struct{} // closed (and replaced) when an IP may have become free
	demand      chan struct{} // buffered(1): the planned spec may have changed
	lastScaleUp time.Time
	requested   int
	// attachMarks are IPs whose attachments the agent is writing or has
	// written (MarkAttachment), blocked until UnmarkAttachment.
	attachMarks map[string]bool
	// attachBlocked is PoolState.AttachBlocked as a set.
	attachBlocked map[string]bool
}

// New returns an allocator over st. It hands out nothing until the first
// UpdatePool.
func New(st store.Store, cfg Config) *Allocator {
	if cfg.AllocTimeout <= 0 {
		cfg.AllocTimeout = DefaultAllocTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Allocator{
		cfg:        cfg,
		store:      st,
		statusIPs:  map[string]bool{},
		specUnused: map[string]bool{},
		releasing:  map[string]bool{},
		idleSince:  map[string]time.Time{},
		lastUsed:   map[string]time.Time{},
		reserved:   map[string]bool{},
		busy:       map[agentapi.AttachmentKey]chan struct{}{},
		changed:    make(chan struct{}),
		demand:     make(chan struct{}, 1),

		attachMarks:   map[string]bool{},
		attachBlocked: map[string]bool{},
	}
}

// Synced reports whether the pool has been observed at least once
// (UpdatePool was called).
func (a *Allocator) Synced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.synced
}

// DemandChanged fires when the spec PlanSpec would return may have changed
// (waiters arrived or left, an IP was released); the syncer then replans.
func (a *Allocator) DemandChanged() <-chan struct{} { return a.demand }

// SetBoundPods records how many pods bound to the node need a pod IP, as
// the API server shows them (host-network, finished and deleting pods left
// out). Those without an IP yet count as pending demand in PlanSpec, so a
// burst is asked for as soon as the scheduler binds it, in one write, not
// batch by batch as its CNI ADDs arrive. An agent without a pod view (no
// Kubernetes) never calls it; its demand is the waiting allocations alone.
func (a *Allocator) SetBoundPods(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.boundPods = max(n, 0)
}

// UpdatePool installs the observed pool and wakes waiting allocations.
func (a *Allocator) UpdatePool(p PoolState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	a.synced = true
	a.pool = p
	status := toSet(p.IPs)
	held := a.heldLocked()
	for ip := range status {
		if !a.statusIPs[ip] && !held[ip] {
			if _, ok := a.idleSince[ip]; !ok {
				a.idleSince[ip] = now
			}
		}
	}
	for ip := range a.statusIPs {
		if !status[ip] {
			delete(a.idleSince, ip)
			delete(a.lastUsed, ip)
		}
	}
	a.statusIPs = status
	a.specUnused = toSet(p.NotInUse)
	a.attachBlocked = toSet(p.AttachBlocked)
	for ip := range a.releasing {
		// Once the spec carries it (durable), or the operator already
		// removed it, the local mark is no longer needed.
		if a.specUnused[ip] || !status[ip] {
			delete(a.releasing, ip)
		}
	}
	// Not signalling demand here: the syncer calls PlanSpec right after
	// UpdatePool, and a signal would make it loop forever.
	a.wakeWaitersLocked()
}

// wakeWaitersLocked wakes waiting allocations (and Changed's readers).
func (a *Allocator) wakeWaitersLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *Allocator) signalDemandLocked() {
	select {
	case a.demand <- struct{}{}:
	default:
	}
}

// usableLocked reports whether ip may be handed out: in status.ips and
// neither in spec.ipsNotInUse nor being released, nor carrying (or about to
// carry) Azure attachments of a pod.
func (a *Allocator) usableLocked(ip string) bool {
	return a.statusIPs[ip] && !a.specUnused[ip] && !a.releasing[ip] && !a.attachMarks[ip] && !a.attachBlocked[ip]
}

func (a *Allocator) heldLocked() map[string]bool {
	held := make(map[string]bool, len(a.reserved))
	for ip := range a.reserved {
		held[ip] = true
	}
	for _, r := range a.store.List() {
		held[r.IP] = true
	}
	return held
}

// pickLocked returns the usable free IP given back longest ago (never-used
// IPs first), so a just-released IP is reused last: a new pod then does not
// inherit the old pod's conntrack entries or peers' stale ARP caches.
func (a *Allocator) pickLocked() string {
	held := a.heldLocked()
	best := ""
	var bestUsed time.Time
	for ip := range a.statusIPs {
		if held[ip] || !a.usableLocked(ip) {
			continue
		}
		used := a.lastUsed[ip]
		if best == "" || used.Before(bestUsed) || (used.Equal(bestUsed) && ip < best) {
			best, bestUsed = ip, used
		}
	}
	return best
}

func toSet(ips []string) map[string]bool {
	s := make(map[string]bool, len(ips))
	for _, ip := range ips {
		s[ip] = true
	}
	return s
}
