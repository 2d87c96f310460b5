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
// primary IP and the VNet's address space, rebuilding the manager when
// either changes.
func snatLoop(ctx context.Context, o Options, d Deps, alloc *ipam.Allocator, log logr.Logger) {
	if d.NewSNAT == nil {
		return
	}
	var (
		mgr       SNAT
		primary   string
		nonMasq   []string
		lastError string
	)
	for {
		delay := o.SNATInterval
		p := alloc.Pool()
		want := append(slices.Clone(p.VNetAddressSpace), o.NonMasqueradeCIDRs...)
		if p.PrimaryIP != "" && len(p.VNetAddressSpace) > 0 {
			if mgr == nil || p.PrimaryIP != primary || !slices.Equal(want, nonMasq) {
				m, err := d.NewSNAT(p.PrimaryIP, want)
				if err != nil {
					log.Error(err, "Failed to configure SNAT", "primaryIP", p.PrimaryIP)
				} else {
					mgr, primary, nonMasq = m, p.PrimaryIP, want
				}
			}
			if mgr != nil {
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
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}
