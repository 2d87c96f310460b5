package ipam

import (
	"context"
	"fmt"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// Allocate returns the IP of att, giving it a free IP of the pool when it
// holds none. The same key always gets the IP it already holds. With no
// free IP it waits (counted as demand, so the pool grows for the whole
// burst) up to AllocTimeout, the caller's wait (WithMaxWait) or ctx; then it
// returns an *agentapi.Error with CodeTryAgainLater. Every error is an
// *agentapi.Error.
func (a *Allocator) Allocate(ctx context.Context, att agentapi.Attachment) (*agentapi.AllocateResponse, error) {
	att.AttachmentKey = att.Normalized()
	if err := ValidateAttachment(att); err != nil {
		return nil, err
	}
	start := a.cfg.Now()
	wait := a.cfg.AllocTimeout
	if d, ok := ctx.Value(maxWaitKey{}).(time.Duration); ok && d < wait {
		wait = d
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	resp, err := a.allocateOrWait(ctx, att, wait, timer.C)
	a.cfg.Metrics.ObserveAllocation(a.cfg.Now().Sub(start), err == nil)
	return resp, err
}

// maxWaitKey keys the caller's wait in a context (WithMaxWait).
type maxWaitKey struct{}

// WithMaxWait returns ctx telling Allocate that its caller waits at most d
// for the answer (agentapi.AllocateRequest.WaitMillis): an allocation that
// finds no free IP answers "try again later" after d if that is sooner than
// AllocTimeout, so the caller hears why rather than timing out.
func WithMaxWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, maxWaitKey{}, max(d, 0))
}

func (a *Allocator) allocateOrWait(ctx context.Context, att agentapi.Attachment, wait time.Duration, timeout <-chan time.Time) (*agentapi.AllocateResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	waited := false
	for {
		if err := a.awaitKeyLocked(ctx, att.AttachmentKey, timeout); err != nil {
			return nil, err
		}
		if rec, ok := a.store.Get(att.AttachmentKey); ok {
			return a.responseLocked(rec.IP), nil
		}
		if ip := a.pickLocked(); ip != "" {
			return a.recordLocked(att, ip)
		}
		if !waited {
			waited = true
			a.cfg.Metrics.Waited()
		}
		if err := a.waitLocked(ctx, wait, timeout); err != nil {
			return nil, err
		}
	}
}

// recordLocked writes ip's allocation to att with mu released, so that
// concurrent allocations share the store's writes (group commit) instead of
// queueing for mu one fsync after another. Meanwhile ip counts as held and
// att's key as busy, so neither is handed out twice.
func (a *Allocator) recordLocked(att agentapi.Attachment, ip string) (*agentapi.AllocateResponse, error) {
	done := a.markBusyLocked(att.AttachmentKey)
	a.reserved[ip] = true
	a.mu.Unlock()
	rec, err := a.store.Add(store.Record{Attachment: att, IP: ip, AllocatedAt: a.cfg.Now()})
	a.mu.Lock()
	delete(a.reserved, ip)
	a.unmarkBusyLocked(att.AttachmentKey, done)
	if err != nil {
		// ip is free again: a waiter may take it.
		a.wakeWaitersLocked()
		return nil, &agentapi.Error{Code: agentapi.CodeInternal, Message: fmt.Sprintf("record allocation of %s: %v", ip, err)}
	}
	delete(a.idleSince, rec.IP)
	a.signalDemandLocked()
	return a.responseLocked(rec.IP), nil
}

// markBusyLocked marks key as being written; the returned channel is closed
// by unmarkBusyLocked.
func (a *Allocator) markBusyLocked(key agentapi.AttachmentKey) chan struct{} {
	done := make(chan struct{})
	a.busy[key] = done
	return done
}

func (a *Allocator) unmarkBusyLocked(key agentapi.AttachmentKey, done chan struct{}) {
	delete(a.busy, key)
	close(done)
}

// awaitKeyLocked waits, with mu released, until no write for key is in
// flight: one attachment's allocations and releases are serialised, only
// different attachments' writes overlap. A nil timeout and ctx never fire.
func (a *Allocator) awaitKeyLocked(ctx context.Context, key agentapi.AttachmentKey, timeout <-chan time.Time) error {
	for {
		done, ok := a.busy[key]
		if !ok {
			return nil
		}
		a.mu.Unlock()
		var err error
		select {
		case <-done:
		case <-timeout:
			err = &agentapi.Error{Code: agentapi.CodeTryAgainLater, Message: fmt.Sprintf("container %s interface %s is still being written; try again later", key.ContainerID, key.IfName)}
		case <-ctx.Done():
			err = &agentapi.Error{Code: agentapi.CodeTryAgainLater, Message: fmt.Sprintf("gave up waiting for the earlier request of container %s interface %s: %v; try again later", key.ContainerID, key.IfName, ctx.Err())}
		}
		a.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// waitLocked counts the caller as a waiter and waits, with mu released,
// until the pool changes, the timeout fires or ctx ends.
func (a *Allocator) waitLocked(ctx context.Context, wait time.Duration, timeout <-chan time.Time) error {
	a.waiters++
	a.signalDemandLocked()
	changed := a.changed
	a.mu.Unlock()
	var err error
	select {
	case <-changed:
	case <-timeout:
		err = &agentapi.Error{Code: agentapi.CodeTryAgainLater, Message: a.noFreeIPMessage(wait)}
	case <-ctx.Done():
		err = &agentapi.Error{Code: agentapi.CodeTryAgainLater, Message: fmt.Sprintf("gave up waiting for a free IP: %v; try again later", ctx.Err())}
	}
	a.mu.Lock()
	a.waiters--
	if err != nil {
		a.cfg.Metrics.TimedOut()
		a.signalDemandLocked()
	}
	return err
}

// noFreeIPMessage explains a timed-out wait; it says when the node is full,
// since then only a deleted pod frees an IP.
func (a *Allocator) noFreeIPMessage(waited time.Duration) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	held := len(a.store.List())
	if limit := a.cfg.Policy.MaxIPs; limit > 0 && held >= limit {
		return fmt.Sprintf("no free IP: this node's pods hold %d IPs, its maximum (--max-ips, at most 250 per VM); try again later, after a pod on this node is deleted", held)
	}
	return fmt.Sprintf("no free IP on this node after waiting %s for the pool to grow (pods hold %d, the pool has %d usable); try again later", waited, held, len(a.pool.IPs)-len(a.pool.NotInUse))
}

func (a *Allocator) responseLocked(ip string) *agentapi.AllocateResponse {
	return &agentapi.AllocateResponse{IP: ip, SubnetCIDR: a.pool.SubnetCIDR, PrimaryIP: a.pool.PrimaryIP}
}

// Release gives back key's IP and returns it ("" when key held nothing).
// A key without a network name is for agentapi.DefaultNetwork, as in
// Allocate and Check.
// The IP becomes free at once but is reused last (see pickLocked).
func (a *Allocator) Release(key agentapi.AttachmentKey) (string, error) {
	key = key.Normalized()
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// Neither a nil timeout nor the background context ever fires.
	_ = a.awaitKeyLocked(context.Background(), key, nil)
	rec, ok := a.store.Get(key)
	if !ok {
		return "", nil
	}
	// Written with mu released, as in recordLocked; the IP stays held in
	// the store until the removal is on disk.
	done := a.markBusyLocked(key)
	a.mu.Unlock()
	_, removed, err := a.store.Remove(key)
	a.mu.Lock()
	a.unmarkBusyLocked(key, done)
	return a.afterRemoveLocked(key, rec, removed, err)
}

// releaseLocked releases key with mu held throughout (the GC's path).
func (a *Allocator) releaseLocked(key agentapi.AttachmentKey) (string, error) {
	rec, ok, err := a.store.Remove(key)
	return a.afterRemoveLocked(key, rec, ok, err)
}

// afterRemoveLocked makes a removed record's IP free.
func (a *Allocator) afterRemoveLocked(key agentapi.AttachmentKey, rec store.Record, ok bool, err error) (string, error) {
	if err != nil {
		return "", &agentapi.Error{Code: agentapi.CodeInternal, Message: fmt.Sprintf("release container %s interface %s: %v", key.ContainerID, key.IfName, err)}
	}
	if !ok {
		return "", nil
	}
	now := a.cfg.Now()
	a.lastUsed[rec.IP] = now
	a.idleSince[rec.IP] = now
	a.wakeWaitersLocked()
	a.signalDemandLocked()
	return rec.IP, nil
}

// Check returns key's record; ok is false when it holds nothing.
func (a *Allocator) Check(key agentapi.AttachmentKey) (store.Record, bool) {
	return a.store.Get(key.Normalized())
}

// Records returns every allocation, sorted by IP.
func (a *Allocator) Records() []store.Record { return a.store.List() }

// ReleaseUnless releases every allocation for which keep returns false and
// that is at least minAge old (a younger one may belong to an ADD still in
// flight). It returns the released keys and the errors of those it could not
// release.
func (a *Allocator) ReleaseUnless(keep func(store.Record) bool, minAge time.Duration) ([]agentapi.AttachmentKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.cfg.Now()
	var released []agentapi.AttachmentKey
	var errs []error
	for _, r := range a.store.List() {
		// A key being written belongs to a request in flight.
		if _, busy := a.busy[r.AttachmentKey]; busy || keep(r) || now.Sub(r.AllocatedAt) < minAge {
			continue
		}
		if _, err := a.releaseLocked(r.AttachmentKey); err != nil {
			errs = append(errs, err)
			continue
		}
		released = append(released, r.AttachmentKey)
	}
	return released, joinErrors(errs)
}
