package ipam

import "github.com/nicpool/nicpool/nodeagent/agentapi"

// MarkAttachment blocks ip from being handed out again until
// UnmarkAttachment, if key still holds it, and reports whether it did. The
// agent marks an IP before it writes the IP's attachment request, so an IP
// its pod gives back while the write is in flight waits for the detach; the
// check and the mark are one step under the allocator's lock.
func (a *Allocator) MarkAttachment(ip string, key agentapi.AttachmentKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.store.Get(key.Normalized())
	if !ok || rec.IP != ip {
		return false
	}
	a.attachMarks[ip] = true
	return true
}

// UnmarkAttachment lets ip be handed out again (once nothing else blocks
// it): its detach is done, or its request was never written.
func (a *Allocator) UnmarkAttachment(ip string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.attachMarks[ip] {
		delete(a.attachMarks, ip)
		a.wakeWaitersLocked()
	}
}

// AttachmentMarks returns the IPs MarkAttachment blocked.
func (a *Allocator) AttachmentMarks() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.attachMarks))
	for ip := range a.attachMarks {
		out = append(out, ip)
	}
	return out
}
