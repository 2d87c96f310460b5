package store

import (
	"fmt"
	"maps"
	"sort"
	"sync"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

var (
	_ Store = (*MemStore)(nil)
	_ Store = (*DiskStore)(nil)
)

// MemStore is an in-memory Store for tests; its FailWrites makes the next
// writes fail, as a full disk would.
type MemStore struct {
	mu      sync.Mutex
	records map[agentapi.AttachmentKey]Record
	// FailWrites, when non-nil, is returned by Add and Remove.
	FailWrites error
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{records: map[agentapi.AttachmentKey]Record{}}
}

// Get implements Store.
func (m *MemStore) Get(key agentapi.AttachmentKey) (Record, bool) {
	key = key.Normalized()
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[key]
	return r, ok
}

// Add implements Store.
func (m *MemStore) Add(rec Record) (Record, error) {
	rec.AttachmentKey = rec.Normalized()
	m.mu.Lock()
	defer m.mu.Unlock()
	next, existing, err := withAdded(m.records, rec)
	if err != nil || existing != nil {
		if existing != nil {
			return *existing, nil
		}
		return Record{}, err
	}
	if m.FailWrites != nil {
		return Record{}, m.FailWrites
	}
	m.records = next
	return rec, nil
}

// Remove implements Store.
func (m *MemStore) Remove(key agentapi.AttachmentKey) (Record, bool, error) {
	key = key.Normalized()
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[key]
	if !ok {
		return Record{}, false, nil
	}
	if m.FailWrites != nil {
		return Record{}, false, m.FailWrites
	}
	delete(m.records, key)
	return r, true, nil
}

// List implements Store.
func (m *MemStore) List() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return sortedRecords(m.records)
}

// Close implements Store.
func (m *MemStore) Close() error { return nil }

// withAdded returns a copy of records with rec added; existing is set when
// rec's key already holds an IP (and next is nil).
func withAdded(records map[agentapi.AttachmentKey]Record, rec Record) (next map[agentapi.AttachmentKey]Record, existing *Record, err error) {
	if err := rec.Validate(); err != nil {
		return nil, nil, fmt.Errorf("add allocation: %w", err)
	}
	if r, ok := records[rec.AttachmentKey]; ok {
		return nil, &r, nil
	}
	for _, r := range records {
		if r.IP == rec.IP {
			return nil, nil, fmt.Errorf("add %s for container %s: %w (container %s, %s)", rec.IP, rec.ContainerID, ErrIPInUse, r.ContainerID, r.IfName)
		}
	}
	next = maps.Clone(records)
	next[rec.AttachmentKey] = rec
	return next, nil, nil
}

func sortedRecords(records map[agentapi.AttachmentKey]Record) []Record {
	out := make([]Record, 0, len(records))
	for _, r := range records {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}
