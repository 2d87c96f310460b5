package controllers

// idleReserve is the quota held back for each pool of the VNet that has not
// asked for IPs yet.
const idleReserve = 10

// usage is one pool's standing in a VNet's quota: IPs it holds or has
// reserved for a write in flight, and how many it wants (already capped by
// the per-VM limit).
type usage struct {
	Used int
	Want int
}

// fairGrant returns how many nicpool IPs a pool may hold, given the VNet limit
// and the other pools of the VNet. It never takes IPs away (a pool keeps what
// it holds until the agent releases them), and it grows a pool only as far as
// leaves every other pool with demand room to reach its fair share
// (limit / pools with demand). When the free quota cannot cover every pool's
// way to its fair share, it is split in proportion to those needs, with at
// least one IP for every pool that needs one, so no pool with demand stays at
// zero while another grows. Pools without demand yet hold back a small floor
// (idleReserve, at most an even split of the limit), so a node whose agent
// asks late still finds room for its first pods.
func fairGrant(limit int, self usage, others []usage) int {
	if self.Want <= self.Used {
		return max(self.Want, 0)
	}
	n, usedOthers := 1, 0
	for _, o := range others {
		usedOthers += o.Used
		if o.Want > 0 {
			n++
		}
	}
	free := limit - usedOthers - self.Used
	if free <= 0 {
		return self.Used
	}
	fair := max(limit/n, 1)
	floor := min(idleReserve, limit/(len(others)+1))
	needOthers := 0
	for _, o := range others {
		if o.Want > 0 {
			needOthers += max(0, min(o.Want, fair)-o.Used)
		} else {
			needOthers += max(0, floor-o.Used)
		}
	}
	ownNeed := max(0, min(self.Want, fair)-self.Used)
	var growth int
	if free >= needOthers+ownNeed {
		growth = free - needOthers
	} else {
		growth = max(free*ownNeed/(needOthers+ownNeed), min(ownNeed, 1))
	}
	return self.Used + min(growth, self.Want-self.Used, free)
}
