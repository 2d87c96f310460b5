// Package pool holds the node agent's pool policy: how many VNet IPs a node
// asks for (spec.requestedIPCount) and which idle IPs it gives back
// (spec.ipsNotInUse). It is pure: no I/O, no clock, no SDK; the caller passes
// the time and the counts in and acts on the answer.
//
// The model is AWS VPC CNI's WARM_IP_TARGET / MINIMUM_IP_TARGET with Azure
// CNS-style batching:
//
//	demand  = max(MinIPTarget, used + pending + WarmIPTarget)
//	target  = min(MaxIPs, roundUp(demand, BatchSize))
//	release = free IPs beyond target, each idle for at least ReleaseCooldown,
//	          and none while less than ReleaseCooldown has passed since the
//	          last scale-up; never an IP held by a pod.
//
// "pending" counts the IPs about to be needed (the agent passes allocations
// waiting right now, or pods bound to the node without an IP, whichever is
// more), so a burst of 250 pods on an empty node raises the target for the
// whole burst in one step instead of one batch per round trip to the operator.
//
// Worked examples with WarmIPTarget=5, MinIPTarget=10, BatchSize=10, MaxIPs=250:
//
//	used=0   pending=0   -> demand max(10, 5)=10     -> target 10
//	used=7   pending=0   -> demand max(10, 12)=12    -> target 20
//	used=20  pending=0   -> demand 25                -> target 30
//	used=0   pending=250 -> demand 255               -> target 250 (clamped)
//	usable=30 used=3, all 27 free idle > cooldown    -> target 10, release 20
//	usable=30 used=3, scaled up 10s ago (cooldown 60s) -> release nothing
//
// See docs/agent-pool-policy.md for the rationale.
package pool

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// MaxIPsPerNode is the hard ceiling on MaxIPs (Azure allows 256 IP
// configurations per NIC; nicpool keeps headroom).
const MaxIPsPerNode = 250

// Config is the policy's tuning.
type Config struct {
	// WarmIPTarget is how many free IPs to keep beyond those in use.
	WarmIPTarget int
	// MinIPTarget is the least number of IPs the node keeps, even when idle.
	MinIPTarget int
	// BatchSize is the granularity of requests: the target is a multiple of it.
	BatchSize int
	// MaxIPs is the most IPs the node asks for (at most MaxIPsPerNode).
	MaxIPs int
	// ReleaseCooldown is how long an IP stays idle, and how long after the
	// last scale-up the node waits, before giving IPs back.
	ReleaseCooldown time.Duration
}

// DefaultConfig is a sensible default for a general-purpose node.
func DefaultConfig() Config {
	return Config{WarmIPTarget: 5, MinIPTarget: 10, BatchSize: 10, MaxIPs: MaxIPsPerNode, ReleaseCooldown: 5 * time.Minute}
}

// Validate reports the first setting that makes the policy meaningless.
func (c Config) Validate() error {
	var errs []error
	if c.WarmIPTarget < 0 {
		errs = append(errs, fmt.Errorf("warm IP target %d must not be negative", c.WarmIPTarget))
	}
	if c.MinIPTarget < 0 {
		errs = append(errs, fmt.Errorf("minimum IP target %d must not be negative", c.MinIPTarget))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch size %d must be at least 1", c.BatchSize))
	}
	if c.MaxIPs < 1 || c.MaxIPs > MaxIPsPerNode {
		errs = append(errs, fmt.Errorf("max IPs %d must be between 1 and %d", c.MaxIPs, MaxIPsPerNode))
	}
	if c.MinIPTarget > c.MaxIPs {
		errs = append(errs, fmt.Errorf("minimum IP target %d must not exceed max IPs %d", c.MinIPTarget, c.MaxIPs))
	}
	if c.ReleaseCooldown < 0 {
		errs = append(errs, fmt.Errorf("release cooldown %s must not be negative", c.ReleaseCooldown))
	}
	return errors.Join(errs...)
}

// Target returns how many IPs the node should hold given used IPs (held by
// pods) and pending allocations (waiting for an IP now).
func Target(c Config, used, pending int) int {
	used, pending = max(used, 0), max(pending, 0)
	demand := max(c.MinIPTarget, used+pending+c.WarmIPTarget)
	batch := max(c.BatchSize, 1)
	target := (demand + batch - 1) / batch * batch
	return max(min(target, c.MaxIPs), 0)
}

// IdleIP is a free IP of the pool and since when nobody has held it.
type IdleIP struct {
	// IP is the address.
	IP string
	// IdleSince is when it became free (granted to the node or released by a pod).
	IdleSince time.Time
}

// ReleaseInput is what SelectRelease decides from.
type ReleaseInput struct {
	// Now is the current time.
	Now time.Time
	// Usable is how many IPs the node may hand out (status.ips less those
	// already in ipsNotInUse).
	Usable int
	// Target is what Target returned.
	Target int
	// LastScaleUp is when the node last raised its request; zero if never.
	LastScaleUp time.Time
	// Free lists the IPs not held by any pod; the only ones that may go.
	Free []IdleIP
	// FairShare is the pool's status.fairShareIPCount, nil when the status
	// has none: the operator's cap from the VNet's fair share. Free IPs
	// beyond it go back at once, without the cooldowns, so the quota reaches
	// nodes below their share; the request (Target) stays the node's demand,
	// which the shares are computed from.
	FairShare *int
}

// SelectRelease returns the free IPs to give back now: at most Usable-Target,
// only those idle for ReleaseCooldown, none within ReleaseCooldown of the last
// scale-up, longest-idle first. The result is sorted by IP for stable output.
// Free IPs beyond in.FairShare go first and ignore the cooldowns.
func SelectRelease(c Config, in ReleaseInput) []string {
	excess := in.Usable - in.Target
	overShare := 0
	if in.FairShare != nil {
		overShare = in.Usable - max(*in.FairShare, 0)
	}
	if max(excess, overShare) <= 0 || len(in.Free) == 0 {
		return nil
	}
	free := slices.Clone(in.Free)
	sort.Slice(free, func(i, j int) bool {
		if !free[i].IdleSince.Equal(free[j].IdleSince) {
			return free[i].IdleSince.Before(free[j].IdleSince)
		}
		return free[i].IP < free[j].IP
	})
	var out []string
	for len(out) < overShare && len(free) > 0 {
		out, free = append(out, free[0].IP), free[1:]
	}
	cooling := !in.LastScaleUp.IsZero() && in.Now.Sub(in.LastScaleUp) < c.ReleaseCooldown
	for _, f := range free {
		if cooling || len(out) >= excess {
			break
		}
		if in.Now.Sub(f.IdleSince) >= c.ReleaseCooldown {
			out = append(out, f.IP)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
