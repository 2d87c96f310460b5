// Package poolsource is the seam between the node agent's allocator and
// wherever the node's pool comes from: the NodeIPPool the operator keeps
// (nodeagent/poolsync), the VM's own NIC kept through ARM by the standalone
// agent (nodeagent/armpool), or the secondary IPs an administrator put on
// the NIC beforehand, read from instance metadata (nodeagent/imdspool).
// Run drives any of them: observe the pool, hand it to the allocator, and
// ask the source for what the allocator plans.
package poolsource

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/nodeagent/ipam"
)

// Source is one place a node's pool comes from. Run calls its methods from
// one goroutine, never concurrently.
type Source interface {
	// Observe returns the pool as the source holds it now: the IPs the
	// allocator may hand out, those given back and not yet gone, the
	// subnet, the node's primary IP and the VNet's address space. An error
	// leaves the allocator with the pool it had.
	Observe(ctx context.Context) (ipam.PoolState, error)
	// Request asks the source for plan: plan.Requested IPs to keep, and
	// plan.NotInUse given back (the allocator already stopped handing them
	// out). observed is the pool the plan was made from. Requesting the
	// plan the source already carries is a no-op. ErrStale means the pool
	// changed meanwhile: Run observes it again at once, without an error.
	Request(ctx context.Context, observed ipam.PoolState, plan ipam.SpecPlan) error
	// ReadOnly reports whether the pool is fixed by someone else (instance
	// metadata): then the allocator plans no request and gives nothing
	// back, since an IP it promised not to use would stay unusable forever.
	ReadOnly() bool
}

// ErrStale is returned by Request when the pool changed since Observe.
var ErrStale = errors.New("the pool changed since it was read")

// RetryLater is returned by Observe or Request when the source cannot make
// progress for a known while (throttled, a write still running, a full
// subnet): Run waits After before the next pass and logs Reason at V(1)
// instead of as an error.
type RetryLater struct {
	After  time.Duration
	Reason string
}

func (e *RetryLater) Error() string { return fmt.Sprintf("%s; retrying in %s", e.Reason, e.After) }

// Defaults of Config.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultResync   = 10 * time.Second
)

// Config configures Run.
type Config struct {
	// Allocator receives the observed pool and plans the requests.
	Allocator *ipam.Allocator
	// Events, when not nil, fires when the source saw a change (a watch
	// event); Run then observes at once.
	Events <-chan struct{}
	// Debounce gathers bursts of demand changes into one request.
	Debounce time.Duration
	// Settle, when set, replaces the Debounce wait before a pass (the
	// NodeIPPool source waits while a burst is still being bound); false
	// means ctx ended.
	Settle func(ctx context.Context) bool
	// Resync observes and replans periodically: sources without events
	// learn of changes this way, and idle IPs go back once their cooldown
	// has passed even when nothing else happens.
	Resync time.Duration
	// ErrorBackoff is the wait after a failed pass; Debounce if zero.
	ErrorBackoff time.Duration
	// Log receives failures.
	Log logr.Logger
	// Name names the source in logs.
	Name string
}

// Run keeps the allocator and src in step until ctx ends.
func Run(ctx context.Context, src Source, cfg Config) error {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	ticker := time.NewTicker(cfg.Resync)
	defer ticker.Stop()
	again := time.After(0)
	var hold time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cfg.Events:
		case <-cfg.Allocator.DemandChanged():
		case <-ticker.C:
		case <-again:
		}
		again = nil
		// Let the rest of a burst arrive so it is asked for in one request;
		// after a RetryLater, nothing (not even new demand) hurries the
		// next pass.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(max(0, time.Until(hold))):
		}
		if cfg.Settle != nil {
			if !cfg.Settle(ctx) {
				return nil
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(cfg.Debounce):
			}
		}
		err := SyncOnce(ctx, src, cfg.Allocator)
		var later *RetryLater
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, ErrStale):
			again = time.After(0)
		case errors.As(err, &later):
			cfg.Log.V(1).Info("Waited for the pool source", "source", cfg.Name, "reason", later.Reason, "retryAfter", later.After)
			hold = time.Now().Add(later.After)
			again = time.After(later.After)
		default:
			cfg.Log.Error(err, "Failed to sync the node's pool", "source", cfg.Name)
			again = time.After(max(cfg.ErrorBackoff, cfg.Debounce))
		}
	}
}

// SyncOnce observes the pool, hands it to the allocator and, unless the
// source is read-only, requests what the allocator plans.
func SyncOnce(ctx context.Context, src Source, alloc *ipam.Allocator) error {
	st, err := src.Observe(ctx)
	if err != nil {
		return err
	}
	alloc.UpdatePool(st)
	if src.ReadOnly() {
		return nil
	}
	plan, ok := alloc.PlanSpec()
	if !ok {
		return nil
	}
	return src.Request(ctx, st, plan)
}
