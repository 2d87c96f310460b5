package controllers

import (
	"cmp"
	"slices"
	"strings"
)

// idleReserve is the quota held back for each pool of the VNet that has not
// asked for IPs yet.
const idleReserve = 10

// usage is one pool's standing in a VNet's quota: IPs it holds or has
// reserved for a write in flight, and how many it wants (already capped by
// the per-VM limit).
type usage struct {
	Name string
	Used int
	Want int
}

// fairShares returns every pool's max-min fair share of the VNet limit: the
// rule the ledger converges to, whatever the order in which pools ask.
//
// Each pool's demand is what it wants; a pool that asks for nothing yet
// demands a small floor (idleReserve, at most an even split of the limit) so
// that a node whose agent asks late still finds room for its first pods.
// Demands are filled level by level: a pool demanding less than an equal
// split of what is left gets its demand, the others share the rest equally.
// When the limit covers every demand, every pool's share is its demand.
// The IPs an equal split leaves over go to the pools first by name. Shares
// thus depend on demands alone, not on who holds what: they move only when a
// pool's request changes or a pool comes or goes, so pools are not woken to
// publish a new share at every NIC write of another.
func fairShares(limit int, pools []usage) map[string]int {
	shares := make(map[string]int, len(pools))
	if len(pools) == 0 {
		return shares
	}
	floor := min(idleReserve, limit/len(pools))
	demand := func(u usage) int {
		if u.Want > 0 {
			return u.Want
		}
		return floor
	}
	order := slices.Clone(pools)
	slices.SortFunc(order, func(a, b usage) int { return cmp.Compare(demand(a), demand(b)) })
	remaining := max(limit, 0)
	for k, u := range order {
		left := len(order) - k
		level := remaining / left
		if d := demand(u); d <= level {
			shares[u.Name] = d
			remaining -= d
			continue
		}
		rest := order[k:]
		slices.SortFunc(rest, func(a, b usage) int { return strings.Compare(a.Name, b.Name) })
		extra := remaining - level*left
		for j, r := range rest {
			shares[r.Name] = level
			if j < extra {
				shares[r.Name]++
			}
		}
		break
	}
	return shares
}

// fairGrant returns how many nicpool IPs self may hold after its next NIC
// write, and its fair share. It never takes IPs away (a grant below what a
// pool holds only stops it from replacing what its agent releases) and never
// grows a pool past its fair share, so IPs given back by pools above their share go to pools below
// theirs. When the free quota cannot bring every pool below its share up to
// it, it is split in proportion to what each still needs, with at least one
// IP for every pool that needs one, so no pool with demand stays at zero
// while another grows.
func fairGrant(limit int, self usage, others []usage) (grant, share int) {
	all := append(slices.Clone(others), self)
	shares := fairShares(limit, all)
	share = shares[self.Name]
	if target := min(self.Want, share); self.Used >= target {
		// Nothing to add; and a pool above its share must not replace the
		// IPs its agent gives back.
		return max(target, 0), share
	}
	free := limit
	for _, u := range all {
		free -= u.Used
	}
	if free <= 0 {
		return self.Used, share
	}
	ownNeed := min(self.Want, share) - self.Used
	needOthers := 0
	for _, o := range others {
		needOthers += max(0, shares[o.Name]-o.Used)
	}
	growth := ownNeed
	if free < needOthers+ownNeed {
		growth = max(free*ownNeed/(needOthers+ownNeed), min(ownNeed, 1))
	}
	return self.Used + min(growth, free), share
}
