package ipam

import (
	"context"
	"fmt"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// ReleaseAfter answers at once with key's IP ("" when key holds nothing)
// and releases it in the background once undo has succeeded. The plugin's
// DEL uses it to leave the kernel's veth delete (about 20 ms of RCU grace
// periods) and the store's fsync off the runtime's critical path.
//
// Nothing is handed out early: until undo has returned and the removal is
// on disk, the record (and so the IP) stays held and key stays busy, so an
// ADD of the same key waits for it (Allocate) and the GC skips it
// (ReleaseUnless). When undo fails the record stays as it is: the IP is
// kept, never doubled, and the caller's recovery (the agent's sweep of
// retired veths at start) or the GC releases it later. done, when not nil,
// is called with the outcome once the background work ended (tests and
// logs).
func (a *Allocator) ReleaseAfter(key agentapi.AttachmentKey, undo func() error, done func(ip string, err error)) (string, error) {
	key = key.Normalized()
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.awaitKeyLocked(context.Background(), key, nil)
	rec, held := a.store.Get(key)
	busy := a.markBusyLocked(key)
	go func() {
		ip, err := a.finishRelease(key, held, busy, undo)
		if done != nil {
			done(ip, err)
		}
	}()
	if !held {
		return "", nil
	}
	return rec.IP, nil
}

// finishRelease runs undo, then removes key's record (when held) and frees
// its IP; key stays busy until then.
func (a *Allocator) finishRelease(key agentapi.AttachmentKey, held bool, busy chan struct{}, undo func() error) (string, error) {
	if err := undo(); err != nil {
		a.mu.Lock()
		a.unmarkBusyLocked(key, busy)
		a.mu.Unlock()
		return "", fmt.Errorf("release container %s interface %s: kept its ip: %w", key.ContainerID, key.IfName, err)
	}
	if !held {
		a.mu.Lock()
		a.unmarkBusyLocked(key, busy)
		a.mu.Unlock()
		return "", nil
	}
	rec, removed, err := a.store.Remove(key)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unmarkBusyLocked(key, busy)
	return a.afterRemoveLocked(key, rec, removed, err)
}
