package controllers

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// nicClaims records which pool serves each NIC: one NIC, one pool. Two pools
// on one NIC would publish the same IPs to two nodes, and the finalizer of
// either would strip the other's pods. The operator is the only writer of
// NICs and runs as one leader, so an in-memory record is authoritative once
// it has been loaded from the pools' status.nicID (before any reconcile; a
// pool records status.nicID before its first write to a NIC). It is safe for
// concurrent use.
type nicClaims struct {
	mu sync.Mutex
	// owner maps a NIC ID (lower case: ARM IDs are case-insensitive) to the
	// pool serving it.
	owner map[string]string
	// byPool maps a pool to the NIC it serves.
	byPool map[string]string
	// refused maps a NIC to the pools turned away from it, to wake when it
	// becomes free.
	refused map[string]map[string]bool
	// wake, if set, is told of pools to reconcile again. It is called
	// without the lock held.
	wake func(pools []string)
}

func newNICClaims() *nicClaims {
	return &nicClaims{owner: map[string]string{}, byPool: map[string]string{}, refused: map[string]map[string]bool{}}
}

func nicKey(id string) string { return strings.ToLower(id) }

// load claims the NIC in each pool's status.nicID, oldest pool first, and
// returns the pools that lost a NIC to an older one (left behind by a
// version without claims). It keeps claims already made.
func (c *nicClaims) load(pools []nicpoolv1.NodeIPPool) (losers map[string]bool) {
	sorted := slices.Clone(pools)
	slices.SortFunc(sorted, func(a, b nicpoolv1.NodeIPPool) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), strings.Compare(a.Name, b.Name))
	})
	losers = map[string]bool{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range sorted {
		if p.Status.NICID == "" {
			continue
		}
		if _, ok := c.byPool[p.Name]; ok {
			continue
		}
		key := nicKey(p.Status.NICID)
		if _, taken := c.owner[key]; taken {
			losers[p.Name] = true
			continue
		}
		c.owner[key], c.byPool[p.Name] = p.Name, key
	}
	return losers
}

// claim makes pool the one serving nicID, unless another pool serves it: then
// it returns that pool and false, and wakes pool once the NIC is free. A pool
// serves one NIC: a claim on another NIC gives up the one it had.
func (c *nicClaims) claim(nicID, pool string) (owner string, ok bool) {
	key := nicKey(nicID)
	c.mu.Lock()
	var waiting []string
	defer func() {
		c.mu.Unlock()
		c.wakeUp(waiting)
	}()
	if o, taken := c.owner[key]; taken && o != pool {
		if c.refused[key] == nil {
			c.refused[key] = map[string]bool{}
		}
		c.refused[key][pool] = true
		waiting = c.releaseLocked(pool)
		return o, false
	}
	if old, ok := c.byPool[pool]; ok && old != key {
		waiting = c.releaseLocked(pool)
	}
	c.owner[key], c.byPool[pool] = pool, key
	for _, set := range c.refused {
		delete(set, pool)
	}
	return pool, true
}

// owns reports whether pool serves nicID.
func (c *nicClaims) owns(pool, nicID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return nicID != "" && c.owner[nicKey(nicID)] == pool
}

// release gives up pool's NIC, if any, and wakes the pools turned away from it.
func (c *nicClaims) release(pool string) {
	c.mu.Lock()
	waiting := c.releaseLocked(pool)
	for _, set := range c.refused {
		delete(set, pool)
	}
	c.mu.Unlock()
	c.wakeUp(waiting)
}

// releaseLocked drops pool's claim and returns the pools waiting for its NIC.
// c.mu is held.
func (c *nicClaims) releaseLocked(pool string) []string {
	key, ok := c.byPool[pool]
	if !ok {
		return nil
	}
	delete(c.byPool, pool)
	delete(c.owner, key)
	var waiting []string
	for p := range c.refused[key] {
		waiting = append(waiting, p)
	}
	delete(c.refused, key)
	slices.Sort(waiting)
	return waiting
}

func (c *nicClaims) wakeUp(pools []string) {
	if len(pools) > 0 && c.wake != nil {
		c.wake(pools)
	}
}
