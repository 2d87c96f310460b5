package controllers

import (
	"cmp"
	"slices"
	"strings"
	"sync"
)

// LedgerEntry is one pool's standing in the VNet quota ledger, as rebuilt from
// the pools' status after a (re)start.
type LedgerEntry struct {
	// Pool is the NodeIPPool's name.
	Pool string
	// VNetID is the ARM ID of the pool's virtual network.
	VNetID string
	// Held is the number of nicpool IP configurations the pool's status lists.
	Held int
	// Want is the pool's request, capped by the per-VM limit.
	Want int
	// Published is the fair share its status shows, or noShare.
	Published int
}

// ledgerEntry is what the ledger knows of one pool. Until the pool's NIC has
// been read since the rebuild, suspect holds the larger of its status count
// and its request: a crash between a NIC write and the status write may have
// left up to that many IPs on the NIC that status misses.
type ledgerEntry struct {
	vnet     string
	held     int
	reserved int
	want     int
	suspect  int
	verified bool
	// published is the fair share the pool's status shows (noShare: none).
	published int
	// nudged is the fair share the pool was last woken up to publish, so a
	// pool is woken once per change of its share.
	nudged int
}

// noShare stands for a fair share that does not bind the pool.
const noShare = -1

func (e *ledgerEntry) used() int {
	return max(e.held+e.reserved, e.suspect)
}

// Ledger is the VNet quota ledger: it hands out per-VNet quota to pools so
// that the nicpool IPs across all NICs of a VNet never exceed the limit, even
// while many NIC writes are in flight. Quota is reserved before a NIC write
// and settled after it. It is safe for concurrent use.
type Ledger struct {
	mu       sync.Mutex
	limit    int
	pools    map[string]*ledgerEntry
	ready    chan struct{}
	onChange func(vnet string, used, held int)
	// wake, if set, is told of pools held back by the VNet quota when quota
	// frees up in their VNet. It is called without the lock held.
	wake func(pools []string)
}

// NewLedger returns an empty ledger for the given per-VNet limit. It grants
// nothing until Rebuild has been called.
func NewLedger(limit int) *Ledger {
	return &Ledger{limit: limit, pools: map[string]*ledgerEntry{}, ready: make(chan struct{})}
}

// Limit returns the per-VNet limit.
func (l *Ledger) Limit() int { return l.limit }

// Ready is closed once the ledger has been rebuilt.
func (l *Ledger) Ready() <-chan struct{} { return l.ready }

// IsReady reports whether the ledger has been rebuilt.
func (l *Ledger) IsReady() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// Rebuild loads the pools' standing (from their status) and opens the ledger.
// Entries for pools already reconciled since are kept: they are newer.
func (l *Ledger) Rebuild(entries []LedgerEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range entries {
		if e.VNetID == "" {
			continue
		}
		if cur, ok := l.pools[e.Pool]; ok && cur.verified {
			continue
		}
		l.pools[e.Pool] = &ledgerEntry{vnet: e.VNetID, held: e.Held, want: e.Want, suspect: max(e.Held, e.Want), published: e.Published, nudged: e.Published}
		l.notify(e.VNetID)
	}
	select {
	case <-l.ready:
	default:
		close(l.ready)
	}
}

// Reserve records that pool, on vnet, holds held nicpool IPs (just read from
// its NIC) and wants want, and returns how many it may hold after its next
// NIC write. Quota above held is reserved until Settle or Cancel.
// The grant never exceeds the pool's fair share (see fairShares); pools
// holding more than theirs are woken to publish it, so their agents give
// back free IPs.
func (l *Ledger) Reserve(pool, vnet string, held, want int) int {
	l.mu.Lock()
	e := l.entry(pool, vnet)
	e.held, e.want, e.reserved, e.suspect, e.verified = held, want, 0, 0, true
	others := make([]usage, 0, len(l.pools))
	for name, o := range l.pools {
		if name != pool && o.vnet == vnet {
			others = append(others, usage{Name: name, Used: o.used(), Want: o.want})
		}
	}
	grant, _ := fairGrant(l.limit, usage{Name: pool, Used: held, Want: want}, others)
	e.reserved = max(0, grant-held)
	l.notify(vnet)
	waiting := l.nudgeLocked(vnet, pool)
	l.mu.Unlock()
	l.wakeUp(waiting)
	return grant
}

// Settle records the outcome of a NIC write (or read): pool now holds held
// nicpool IPs, and its reservation is returned.
func (l *Ledger) Settle(pool, vnet string, held int) {
	l.mu.Lock()
	e := l.entry(pool, vnet)
	before := e.used()
	e.held, e.reserved, e.suspect, e.verified = held, 0, 0, true
	l.notify(vnet)
	waiting := append(l.freedLocked(vnet, before-e.used(), pool), l.nudgeLocked(vnet, pool)...)
	l.mu.Unlock()
	l.wakeUp(waiting)
}

// Observe records a pool's demand as soon as the informer sees it, so that
// fair shares count pools whose reconcile has not run yet. held (the status
// count) is used only for a pool the ledger does not know.
// published is the fair share its status shows (noShare: none). A change of
// demand changes the shares of the VNet's other pools: those that must
// publish a lower share are woken.
func (l *Ledger) Observe(pool, vnet string, held, want, published int) {
	if vnet == "" {
		return
	}
	l.mu.Lock()
	e, ok := l.pools[pool]
	if !ok {
		e = &ledgerEntry{vnet: vnet, held: held, nudged: published}
		l.pools[pool] = e
	}
	if e.vnet != vnet {
		l.mu.Unlock()
		return // the pool's next reconcile moves it.
	}
	e.want, e.published = want, published
	l.notify(vnet)
	waiting := l.nudgeLocked(vnet, "")
	l.mu.Unlock()
	l.wakeUp(waiting)
}

// Cancel returns pool's reservation after a NIC write that ARM refused, so
// the NIC is known to be unchanged.
// It wakes nobody: ARM just refused a write (throttled, conflict, stale
// etag), so other pools are better left to their own schedule.
func (l *Ledger) Cancel(pool string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.pools[pool]; ok {
		e.reserved = 0
		l.notify(e.vnet)
	}
}

// Forget drops a pool whose IP configurations are gone from its NIC.
func (l *Ledger) Forget(pool string) {
	l.mu.Lock()
	var waiting []string
	if e, ok := l.pools[pool]; ok {
		delete(l.pools, pool)
		l.notify(e.vnet)
		waiting = append(l.freedLocked(e.vnet, e.used(), pool), l.nudgeLocked(e.vnet, pool)...)
	}
	l.mu.Unlock()
	l.wakeUp(waiting)
}

// freedLocked returns the pools of vnet to wake after freed IPs of quota
// came back: pools below their fair share, fewest IPs first, at most one per
// free IP, so a small release does not stampede every pool into an ARM read.
// The releasing pool itself is left to its own result. l.mu is held.
func (l *Ledger) freedLocked(vnet string, freed int, except string) []string {
	if freed <= 0 || l.wake == nil {
		return nil
	}
	used, _ := l.usedLocked(vnet)
	free := l.limit - used
	if free <= 0 {
		return nil
	}
	type cand struct {
		name string
		used int
	}
	var cands []cand
	shares := l.sharesLocked(vnet)
	for name, e := range l.pools {
		if name != except && e.vnet == vnet && e.used() < min(e.want, shares[name]) {
			cands = append(cands, cand{name, e.used()})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Or(a.used-b.used, strings.Compare(a.name, b.name)) })
	out := make([]string, 0, min(free, len(cands)))
	for _, c := range cands[:min(free, len(cands))] {
		out = append(out, c.name)
	}
	return out
}

// wakeUp hands pools to the wake hook, if any.
func (l *Ledger) wakeUp(pools []string) {
	if len(pools) > 0 && l.wake != nil {
		l.wake(pools)
	}
}

// Used returns the quota of vnet counted against its limit (held, reserved
// and not yet verified) and the nicpool IPs known to be on its NICs.
func (l *Ledger) Used(vnet string) (used, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.usedLocked(vnet)
}

func (l *Ledger) usedLocked(vnet string) (used, held int) {
	for _, e := range l.pools {
		if e.vnet == vnet {
			used += e.used()
			held += e.held
		}
	}
	return used, held
}

// entry returns pool's entry, creating it or moving it to vnet. l.mu is held.
func (l *Ledger) entry(pool, vnet string) *ledgerEntry {
	e, ok := l.pools[pool]
	if !ok {
		e = &ledgerEntry{vnet: vnet}
		l.pools[pool] = e
	}
	if e.vnet != vnet {
		old := e.vnet
		e.vnet = vnet
		l.notify(old)
	}
	return e
}

// notify reports vnet's usage to the change hook. l.mu is held.
func (l *Ledger) notify(vnet string) {
	if l.onChange == nil {
		return
	}
	used, held := l.usedLocked(vnet)
	l.onChange(vnet, used, held)
}
