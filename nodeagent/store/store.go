// Package store keeps the node-local record of which attachment holds which
// IP. The disk implementation survives a crash at any point of a write: the
// state on disk is always either the one before or the one after.
package store

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Record is one allocation: an attachment and the IP it holds.
type Record struct {
	agentapi.Attachment
	// IP is the address held.
	IP string `json:"ip"`
	// AllocatedAt is when the IP was first given to the attachment.
	AllocatedAt time.Time `json:"allocatedAt"`
}

// ErrIPInUse is returned by Add when the IP is held by another attachment.
var ErrIPInUse = errors.New("ip is held by another attachment")

// Store is the allocation record; a key without a network name is
// agentapi.DefaultNetwork's (Add, Get and Remove normalise it). Implementations are safe for concurrent
// use (each holds its own mutex), but a caller that decides which IP to add
// from what the store says must serialise that decision itself: the
// allocator holds its lock across List/Get and Add.
type Store interface {
	// Get returns the record of key; ok is false when there is none.
	Get(key agentapi.AttachmentKey) (rec Record, ok bool)
	// Add records rec durably before returning. It is idempotent: when
	// rec's key already holds an IP, it returns that record unchanged and
	// no error. It returns ErrIPInUse when another key holds rec.IP. On
	// error nothing changes.
	Add(rec Record) (Record, error)
	// Remove deletes key's record durably and returns it; removing a key
	// that holds nothing succeeds with ok false. On error nothing changes.
	Remove(key agentapi.AttachmentKey) (rec Record, ok bool, err error)
	// List returns every record, sorted by IP. Get and List show only
	// durable records: a change whose Add or Remove has not returned yet
	// may be invisible.
	List() []Record
	// Close releases the store's resources.
	Close() error
}

// Validate checks a record for fields the store needs.
func (r Record) Validate() error {
	if r.ContainerID == "" {
		return errors.New("container ID is empty")
	}
	if r.IfName == "" {
		return errors.New("interface name is empty")
	}
	a, err := netip.ParseAddr(r.IP)
	if err != nil || !a.Is4() {
		return fmt.Errorf("ip %q is not an IPv4 address", r.IP)
	}
	return nil
}
