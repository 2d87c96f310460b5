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
// grows a pool past its fair share, so IPs given back by pools above their
// share go to pools below theirs. When the free quota cannot bring every pool
// below its share up to it, the free quota is water-filled over those pools:
// the emptiest are raised first to a common level, and the IPs the level
// leaves over go one each to the pools first by name. Every pool computes the
// same split from the ledger, so the grants add up to exactly the free quota
// and each pool reaches its part in one NIC write. (A proportional split
// rounded down left up to one IP per pool unclaimed, and the pools held back
// by it were only woken by a later change: 70 pools stopped at 15,933 of
// 16,000 for minutes.)
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
	var needy []fill
	need := 0
	// A pool's share is at most what it wants, except that an idle pool's
	// share is the reserve kept for its first pods: counted as need, it is
	// held back rather than handed to the pools asking now.
	for _, u := range all {
		if c := shares[u.Name]; c > u.Used {
			needy = append(needy, fill{name: u.Name, from: u.Used, to: c})
			need += c - u.Used
		}
	}
	if free >= need {
		return min(self.Want, share), share
	}
	return waterFill(free, needy)[self.Name], share
}

// fill is a pool's standing in a water-fill: it holds from and may grow to to.
type fill struct {
	name     string
	from, to int
}

// waterFill splits free IPs over pools that each need to-from > 0 of them,
// where free is less than their total need: it finds the highest level L that
// raising every pool to min(to, L) fits in free, then gives what is left one
// IP each to the pools that can go above L, first by name. It returns what
// each pool may hold.
func waterFill(free int, pools []fill) map[string]int {
	cost := func(level int) int {
		n := 0
		for _, p := range pools {
			n += max(0, min(p.to, level)-p.from)
		}
		return n
	}
	// cost is monotonic in the level; the highest level that fits lies
	// between the lowest holding and the highest cap.
	lo, hi := pools[0].from, pools[0].to
	for _, p := range pools {
		lo, hi = min(lo, p.from), max(hi, p.to)
	}
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if cost(mid) <= free {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	left := free - cost(lo)
	sorted := slices.Clone(pools)
	slices.SortFunc(sorted, func(a, b fill) int { return strings.Compare(a.name, b.name) })
	out := make(map[string]int, len(pools))
	for _, p := range sorted {
		out[p.name] = max(p.from, min(p.to, lo))
		if left > 0 && p.from <= lo && p.to > lo {
			out[p.name]++
			left--
		}
	}
	return out
}
