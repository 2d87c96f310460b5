package store

import (
	"fmt"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// batch is a group of changes written to disk together: every change
// accepted while an earlier write is in flight joins the open batch, and one
// write (two fsyncs) then makes all of them durable.
type batch struct {
	done bool
	err  error
	// changes counts the changes in the batch (for tests).
	changes int
}

// commitLocked makes the store's pending state durable and returns once the
// batch holding the caller's change is on disk (or failed). d.mu is held on
// entry and on return; it is released while a write runs, so changes
// accepted meanwhile join the next batch. The caller whose batch is open
// and finds no write in flight becomes the writer (no background goroutine).
func (d *DiskStore) commitLocked() error {
	if d.open == nil {
		d.open = &batch{}
	}
	b := d.open
	b.changes++
	for !b.done {
		if d.writing {
			d.cond.Wait()
			continue
		}
		d.writing = true
		d.open = nil
		snapshot := d.pending
		d.mu.Unlock()
		err := d.persist(snapshot)
		d.mu.Lock()
		d.writing = false
		b.done, b.err = true, err
		if err == nil {
			d.records = snapshot
		} else {
			// The pending state is built on the failed one: drop it, and
			// fail the changes that joined the next batch meanwhile, so that
			// on error nothing changes.
			d.pending = d.records
			if d.open != nil {
				d.open.done = true
				d.open.err = fmt.Errorf("an earlier write of the same state failed: %w", err)
				d.open = nil
			}
		}
		d.cond.Broadcast()
	}
	return b.err
}

// inFlightLocked reports whether key's pending state differs from what is on
// disk: a change to it was accepted and is not durable yet.
func (d *DiskStore) inFlightLocked(key agentapi.AttachmentKey) bool {
	p, inPending := d.pending[key]
	r, onDisk := d.records[key]
	return inPending != onDisk || p.IP != r.IP
}
