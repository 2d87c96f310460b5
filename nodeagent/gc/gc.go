// Package gc releases allocations whose pods are gone: periodically against
// the pods the API server has on this node (after a grace period), and once
// at start against the host's veths.
package gc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/metrics"
	"github.com/nicpool/nicpool/nodeagent/store"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

// DefaultGrace is how long an allocation's pod must be missing before the
// allocation is released; a pod just created may not be in the cache yet.
const DefaultGrace = 60 * time.Second

// Releaser is what GC needs from the allocator (ipam.Allocator).
type Releaser interface {
	// ReleaseUnless releases every allocation at least minAge old for
	// which keep is false.
	ReleaseUnless(keep func(store.Record) bool, minAge time.Duration) ([]agentapi.AttachmentKey, error)
}

// Pod identifies a pod on this node.
type Pod struct {
	Namespace, Name, UID string
}

// PodLister returns the pods on this node.
type PodLister func(ctx context.Context) ([]Pod, error)

// podSet answers whether a record's pod still exists.
type podSet struct {
	names map[string]bool
	uids  map[string]bool
}

func newPodSet(pods []Pod) podSet {
	s := podSet{names: make(map[string]bool, len(pods)), uids: make(map[string]bool, len(pods))}
	for _, p := range pods {
		s.names[p.Namespace+"/"+p.Name] = true
		if p.UID != "" {
			s.uids[p.UID] = true
		}
	}
	return s
}

// has reports whether r's pod exists: by UID when the record has one (a
// StatefulSet pod recreated under the same name is another pod), by name
// for records of runtimes that do not pass K8S_POD_UID.
func (s podSet) has(r store.Record) bool {
	if r.PodUID != "" {
		return s.uids[r.PodUID]
	}
	return s.names[r.PodNamespace+"/"+r.PodName]
}

// LinkExists reports whether a host interface with this name exists.
type LinkExists func(name string) (bool, error)

// Config configures a Collector.
type Config struct {
	// Grace is DefaultGrace if zero.
	Grace time.Duration
	// Pods lists the node's pods.
	Pods PodLister
	// LinkExists checks host veths; nil skips the veth check.
	LinkExists LinkExists
	// Metrics counts releases.
	Metrics *metrics.Metrics
	// Now is time.Now if nil.
	Now func() time.Time
	// Log receives what was released.
	Log logr.Logger
}

// Collector is the pod garbage collector. Run it from one goroutine.
type Collector struct {
	cfg          Config
	alloc        Releaser
	missingSince map[agentapi.AttachmentKey]time.Time
	// deferred are allocations ReconcileAtStart found without a veth but
	// younger than the grace period: their ADD may still be in flight.
	// RunOnce checks their veth again once they are older.
	deferred map[agentapi.AttachmentKey]bool
}

// New returns a Collector.
func New(alloc Releaser, cfg Config) *Collector {
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Collector{cfg: cfg, alloc: alloc, missingSince: map[agentapi.AttachmentKey]time.Time{}, deferred: map[agentapi.AttachmentKey]bool{}}
}

// RecoveredPrefix starts the container ID of a record rebuilt from a host
// route after --reset-state; the rest is the veth name.
const RecoveredPrefix = "recovered."

// vethOf returns the host veth of a record.
func vethOf(r store.Record) string {
	if name, ok := strings.CutPrefix(r.ContainerID, RecoveredPrefix); ok {
		return name
	}
	return vethname.VethName(r.ContainerID, r.IfName)
}

// RunOnce releases the allocations whose pod has been missing from the API
// for the grace period (and that are at least that old) and whose host veth
// is gone. Allocations without pod information are left to CNI GC and the
// veth check.
func (c *Collector) RunOnce(ctx context.Context) error {
	list, err := c.cfg.Pods(ctx)
	if err != nil {
		return fmt.Errorf("garbage-collect allocations: %w", err)
	}
	pods := newPodSet(list)
	now := c.cfg.Now()
	seen := map[agentapi.AttachmentKey]bool{}
	var checkErrs []error
	keep := func(r store.Record) bool {
		seen[r.AttachmentKey] = true
		if r.PodName == "" || pods.has(r) {
			delete(c.missingSince, r.AttachmentKey)
			if c.deferred[r.AttachmentKey] {
				return c.keepDeferred(r, now, &checkErrs)
			}
			return !c.recoveredAndGone(r)
		}
		since, ok := c.missingSince[r.AttachmentKey]
		if !ok {
			c.missingSince[r.AttachmentKey] = now
			return true
		}
		if now.Sub(since) < c.cfg.Grace {
			return true
		}
		// A force-deleted pod leaves the API before its sandbox is torn
		// down: while its veth (and the /32 route to it) exist, handing the
		// IP to the next ADD would put two pods on one address.
		exists, err := c.vethExists(r)
		if err != nil {
			checkErrs = append(checkErrs, err)
			return true
		}
		return exists
	}
	released, err := c.alloc.ReleaseUnless(keep, c.cfg.Grace)
	if len(checkErrs) > 0 {
		err = errors.Join(err, fmt.Errorf("check host veths: %w", checkErrs[0]))
	}
	for k := range c.missingSince {
		if !seen[k] {
			delete(c.missingSince, k)
		}
	}
	for k := range c.deferred {
		if !seen[k] {
			delete(c.deferred, k)
		}
	}
	for _, k := range released {
		delete(c.missingSince, k)
		delete(c.deferred, k)
	}
	c.cfg.Metrics.GCReleased(metrics.ReasonPodGone, len(released))
	if len(released) > 0 {
		c.cfg.Log.Info("Released allocations of pods that are gone", "count", len(released))
	}
	if err != nil {
		return fmt.Errorf("garbage-collect allocations: %w", err)
	}
	return nil
}

// keepDeferred decides on an allocation ReconcileAtStart deferred: kept
// while younger than the grace period, then kept only if its veth exists
// (its ADD completed; it is no longer deferred).
func (c *Collector) keepDeferred(r store.Record, now time.Time, checkErrs *[]error) bool {
	if now.Sub(r.AllocatedAt) < c.cfg.Grace {
		return true
	}
	exists, err := c.vethExists(r)
	if err != nil {
		*checkErrs = append(*checkErrs, err)
		return true
	}
	delete(c.deferred, r.AttachmentKey)
	return exists
}

// vethExists reports whether r's host veth exists; false when there is no
// LinkExists to ask.
func (c *Collector) vethExists(r store.Record) (bool, error) {
	if c.cfg.LinkExists == nil {
		return false, nil
	}
	return c.cfg.LinkExists(vethOf(r))
}

// recoveredAndGone reports whether r was rebuilt from a host route and its
// veth no longer exists (its pod was deleted while the state was lost).
func (c *Collector) recoveredAndGone(r store.Record) bool {
	if !strings.HasPrefix(r.ContainerID, RecoveredPrefix) || c.cfg.LinkExists == nil {
		return false
	}
	ok, err := c.cfg.LinkExists(vethOf(r))
	return err == nil && !ok
}

// ReconcileAtStart releases, before the agent serves, every allocation whose
// host veth is gone and whose pod is not in the API: the pod was deleted
// while the agent was down and its DEL never reached us. An allocation
// younger than the grace period is only deferred to RunOnce: the previous
// agent may have answered its ADD just before it died, and the plugin,
// which outlives the agent, may not have created the veth yet (without
// pods, as with nerdctl, nothing else tells such a container from a gone
// one).
func (c *Collector) ReconcileAtStart(ctx context.Context) error {
	if c.cfg.LinkExists == nil {
		return nil
	}
	list, err := c.cfg.Pods(ctx)
	if err != nil {
		return fmt.Errorf("reconcile allocations at start: %w", err)
	}
	pods := newPodSet(list)
	now := c.cfg.Now()
	var checkErrs []error
	keep := func(r store.Record) bool {
		if r.PodName != "" && pods.has(r) {
			return true
		}
		exists, err := c.cfg.LinkExists(vethOf(r))
		if err != nil {
			checkErrs = append(checkErrs, err)
			return true
		}
		if !exists && now.Sub(r.AllocatedAt) < c.cfg.Grace {
			c.deferred[r.AttachmentKey] = true
			return true
		}
		return exists
	}
	released, err := c.alloc.ReleaseUnless(keep, 0)
	if len(c.deferred) > 0 {
		c.cfg.Log.Info("Deferred allocations without a veth whose ADD may still be in flight", "count", len(c.deferred), "grace", c.cfg.Grace)
	}
	c.cfg.Metrics.GCReleased(metrics.ReasonStartup, len(released))
	if len(released) > 0 {
		c.cfg.Log.Info("Released allocations whose veth and pod are gone", "count", len(released))
	}
	if err != nil {
		return fmt.Errorf("reconcile allocations at start: %w", err)
	}
	if len(checkErrs) > 0 {
		return fmt.Errorf("reconcile allocations at start: check host veths: %w", checkErrs[0])
	}
	return nil
}

// Run calls RunOnce every interval until ctx ends, logging failures.
func (c *Collector) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.RunOnce(ctx); err != nil {
			c.cfg.Log.Error(err, "Failed to garbage-collect allocations")
		}
	}
}
