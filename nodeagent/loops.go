package nodeagent

import (
	"context"
	"slices"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/nodeagent/ipam"
)

// withdrawAfter is how long the agent must be unable to serve before it
// withdraws the CNI configuration; brief blips (an API server restart) do
// not flap the node's readiness. A variable so tests can shorten it.
var withdrawAfter = 30 * time.Second

// installCheckInterval is how often readiness is re-evaluated.
var installCheckInterval = 2 * time.Second

// installLoop installs the CNI plugin once the pool has IPs to give and
// withdraws its configuration when the agent has been unable to serve for
// withdrawAfter. It leaves the configuration in place on shutdown: pods
// keep running across an agent restart, and new ADDs retry until it is back.
func installLoop(ctx context.Context, inst Installer, alloc *ipam.Allocator, log logr.Logger) {
	if inst == nil {
		return
	}
	installed := false
	var notReadySince time.Time
	t := time.NewTicker(installCheckInterval)
	defer t.Stop()
	for {
		changed := alloc.Changed()
		ready, reason := alloc.Ready()
		switch {
		case ready && !installed:
			if err := inst.Install(); err != nil {
				log.Error(err, "Failed to install the CNI plugin")
			} else {
				installed = true
				log.Info("Installed the CNI plugin")
			}
			notReadySince = time.Time{}
		case ready:
			notReadySince = time.Time{}
		case notReadySince.IsZero():
			notReadySince = time.Now()
		case time.Since(notReadySince) >= withdrawAfter:
			if err := inst.Withdraw(); err != nil {
				log.Error(err, "Failed to withdraw the CNI configuration")
			} else {
				if installed {
					log.Info("Withdrew the CNI configuration", "reason", reason)
				}
				installed = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// snatLoop converges SNAT every interval once the pool reports the node's
// primary IP and the VNet's address space, rebuilding the manager (and
// converging at once) when either changes or a pod IP gains or loses a
// public IP of its own.
func snatLoop(ctx context.Context, o Options, d Deps, alloc *ipam.Allocator, log logr.Logger) {
	if d.NewSNAT == nil {
		return
	}
	var (
		mgr       SNAT
		primary   string
		nonMasq   []string
		ownPublic []string
		lastError string
		lastSync  time.Time
	)
	// Validate has checked the flag: an error cannot happen here.
	services, _ := parseServiceEndpointPrefixes(o.ServiceEndpointPrefixes)
	for {
		delay := o.SNATInterval
		changed := alloc.Changed()
		p := alloc.Pool()
		want := nonMasqueradeCIDRs(p, o.NonMasqueradeCIDRs, services)
		public := slices.Sorted(slices.Values(p.OwnPublicIP))
		if p.PrimaryIP != "" && len(p.VNetAddressSpace) > 0 {
			rebuilt := false
			if mgr == nil || p.PrimaryIP != primary || !slices.Equal(want, nonMasq) || !slices.Equal(public, ownPublic) {
				m, err := d.NewSNAT(p.PrimaryIP, want, public)
				if err != nil {
					log.Error(err, "Failed to configure SNAT", "primaryIP", p.PrimaryIP)
				} else {
					mgr, primary, nonMasq, ownPublic, rebuilt = m, p.PrimaryIP, want, public, true
				}
			}
			// Woken by a pool change that left the rules as they were:
			// nothing to converge before the interval.
			if mgr != nil && (rebuilt || time.Since(lastSync) >= o.SNATInterval) {
				lastSync = time.Now()
				if err := mgr.Sync(ctx); err != nil && err.Error() != lastError {
					log.Error(err, "Failed to sync SNAT rules")
					lastError = err.Error()
				} else if err == nil {
					lastError = ""
				}
			}
		}
		if mgr == nil {
			delay = installCheckInterval // the pool is not known yet: look again soon
		} else {
			delay = max(o.SNATInterval-time.Since(lastSync), time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			// A pod IP may have gained or lost its own public IP.
		case <-time.After(delay):
		}
	}
}
