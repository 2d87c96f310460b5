package controllers

import "slices"

// The ledger's side of fair shares (see fairShares): what each pool's status
// should show, and which pools to wake so their agents learn a lower share.

// FairShare returns pool's fair share of its VNet's quota and whether it
// binds the pool (it wants or holds more). A pool the ledger does not know
// is not bound.
func (l *Ledger) FairShare(pool string) (share int, binding bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.pools[pool]
	if !ok {
		return 0, false
	}
	return l.bindingLocked(pool, e, l.sharesLocked(e.vnet))
}

// Published records the fair share pool's status now shows (noShare: none).
// Should the share have moved since the pass computed it, in a way that
// matters to the agent, the pool is woken to publish the new one.
func (l *Ledger) Published(pool string, share int) {
	l.mu.Lock()
	e, ok := l.pools[pool]
	if !ok {
		l.mu.Unlock()
		return
	}
	e.published, e.nudged = share, share
	var waiting []string
	if cur, binding := l.bindingLocked(pool, e, l.sharesLocked(e.vnet)); binding && capAt(e.held, cur) != capAt(e.held, share) {
		e.nudged = cur
		waiting = []string{pool}
	} else if !binding && capAt(e.held, noShare) != capAt(e.held, share) {
		e.nudged = noShare
		waiting = []string{pool}
	}
	l.mu.Unlock()
	l.wakeUp(waiting)
}

// capAt is the most IPs an agent holding held keeps under share.
func capAt(held, share int) int {
	if share == noShare {
		return held
	}
	return min(held, share)
}

// sharesLocked returns the fair shares of vnet's pools. l.mu is held.
func (l *Ledger) sharesLocked(vnet string) map[string]int {
	var pools []usage
	for name, e := range l.pools {
		if e.vnet == vnet {
			pools = append(pools, usage{Name: name, Used: e.used(), Want: e.want})
		}
	}
	return fairShares(l.limit, pools)
}

// bindingLocked returns pool's share and whether it binds. l.mu is held.
func (l *Ledger) bindingLocked(pool string, e *ledgerEntry, shares map[string]int) (int, bool) {
	share := shares[pool]
	return share, share < max(e.want, e.held)
}

// nudgeLocked returns the pools of vnet (but except) whose agents would act
// differently on their current fair share than on the one their status
// shows: one holding more than either. They are woken to publish it, once
// per change. A stale share that makes no difference to the agent waits for
// the pool's next pass. l.mu is held.
func (l *Ledger) nudgeLocked(vnet, except string) []string {
	if l.wake == nil {
		return nil
	}
	shares := l.sharesLocked(vnet)
	var out []string
	for name, e := range l.pools {
		if name == except || e.vnet != vnet {
			continue
		}
		cur := noShare
		if share, binding := l.bindingLocked(name, e, shares); binding {
			cur = share
		}
		if cur != e.nudged && capAt(e.held, cur) != capAt(e.held, e.published) {
			e.nudged = cur
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
