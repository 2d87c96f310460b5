package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// FileName is the state file inside the state directory.
const FileName = "allocations.json"

// formatVersion is the version of the state file's layout. Version 2 added
// the network name to each record's key; a version 1 file still loads, its
// records migrated to agentapi.DefaultNetwork (the only network agents
// before version 2 installed), and is rewritten as version 2 on the next
// change.
const formatVersion = 2

// legacyFormatVersion is the oldest layout Open still reads.
const legacyFormatVersion = 1

// fileFormat is the state file's JSON layout.
type fileFormat struct {
	Version int      `json:"version"`
	Records []Record `json:"records"`
}

// CorruptError says the state file cannot be trusted. Recovery: start the
// agent once with --reset-state, which moves the file aside (see ResetState)
// and rebuilds the record from the pod routes on the host, or move it aside
// by hand.
type CorruptError struct {
	// Path is the state file.
	Path string
	// Err is what is wrong with it.
	Err error
}

// Error implements error.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("allocation state file %s is corrupt: %v; start the agent with --reset-state to move it aside and rebuild from the host's pod routes", e.Path, e.Err)
}

// Unwrap returns the underlying error.
func (e *CorruptError) Unwrap() error { return e.Err }

// DiskStore is a Store persisted as one JSON file, rewritten atomically on
// every change (temp file, fsync, rename, fsync directory). Concurrent
// changes share a write (group commit, see commitLocked): each Add and
// Remove still returns only once its change is on disk, but 50 allocations
// arriving together cost a few writes, not 50.
type DiskStore struct {
	mu   sync.Mutex
	cond *sync.Cond
	path string
	// records is the state on disk: what Get and List return.
	records map[agentapi.AttachmentKey]Record
	// pending is records with every accepted change applied, durable or
	// not; new changes are checked against it. Both maps are replaced,
	// never mutated.
	pending map[agentapi.AttachmentKey]Record
	// open collects the changes that the next write will carry; writing
	// is true while a write runs with mu released.
	open    *batch
	writing bool
	// hook, for tests, runs before each write step; see writeFileAtomic.
	hook func(step string) error
}

// Open creates dir (0700) if needed and loads the state file in it. A
// missing file is an empty store; an unreadable or invalid one is a
// *CorruptError.
func Open(dir string) (*DiskStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict state directory %s to 0700: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	if err := removeTemps(path); err != nil {
		return nil, err
	}
	records, err := load(path)
	if err != nil {
		return nil, err
	}
	d := &DiskStore{path: path, records: records, pending: records}
	d.cond = sync.NewCond(&d.mu)
	return d, nil
}

func load(path string) (map[agentapi.AttachmentKey]Record, error) {
	records := map[agentapi.AttachmentKey]Record{}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return records, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read allocation state %s: %w", path, err)
	}
	var f fileFormat
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, &CorruptError{Path: path, Err: fmt.Errorf("decode json: %w", err)}
	}
	// The file is written as exactly one document: anything after it (a
	// second document, garbage) means it was not written by us, and reading
	// only the first value would silently drop the rest.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &CorruptError{Path: path, Err: fmt.Errorf("unexpected data after the JSON document at byte %d", dec.InputOffset())}
	}
	if f.Version != formatVersion && f.Version != legacyFormatVersion {
		return nil, &CorruptError{Path: path, Err: fmt.Errorf("format version %d, want %d or %d", f.Version, legacyFormatVersion, formatVersion)}
	}
	for i, r := range f.Records {
		r.AttachmentKey = r.Normalized()
		next, existing, err := withAdded(records, r)
		if err == nil && existing != nil {
			err = fmt.Errorf("container %s interface %s is listed twice", r.ContainerID, r.IfName)
		}
		if err != nil {
			return nil, &CorruptError{Path: path, Err: fmt.Errorf("record %d: %w", i, err)}
		}
		records = next
	}
	return records, nil
}

// ResetState moves the state file in dir aside (to a name with a
// ".corrupt-<unix time>" suffix) and returns the new name; "" when there was
// no file.
func ResetState(dir string, now time.Time) (string, error) {
	path := filepath.Join(dir, FileName)
	aside := fmt.Sprintf("%s.corrupt-%d", path, now.Unix())
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("move allocation state %s aside: %w", path, err)
	}
	return aside, nil
}

// Path is the state file.
func (d *DiskStore) Path() string { return d.path }

// Get implements Store.
func (d *DiskStore) Get(key agentapi.AttachmentKey) (Record, bool) {
	key = key.Normalized()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.records[key]
	return r, ok
}

// Add implements Store.
func (d *DiskStore) Add(rec Record) (Record, error) {
	rec.AttachmentKey = rec.Normalized()
	d.mu.Lock()
	defer d.mu.Unlock()
	next, existing, err := withAdded(d.pending, rec)
	if existing != nil {
		// The record may still be on its way to disk: answer only once
		// it is there (a write failing meanwhile fails this call too).
		if d.inFlightLocked(rec.AttachmentKey) {
			if err := d.commitLocked(); err != nil {
				return Record{}, fmt.Errorf("record %s for container %s: %w", existing.IP, rec.ContainerID, err)
			}
		}
		return *existing, nil
	}
	if err != nil {
		return Record{}, err
	}
	d.pending = next
	if err := d.commitLocked(); err != nil {
		return Record{}, fmt.Errorf("record %s for container %s: %w", rec.IP, rec.ContainerID, err)
	}
	return rec, nil
}

// Remove implements Store.
func (d *DiskStore) Remove(key agentapi.AttachmentKey) (Record, bool, error) {
	key = key.Normalized()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.pending[key]
	if !ok {
		if d.inFlightLocked(key) {
			// Its removal is accepted but not yet durable.
			if err := d.commitLocked(); err != nil {
				return Record{}, false, fmt.Errorf("remove container %s: %w", key.ContainerID, err)
			}
		}
		return Record{}, false, nil
	}
	next := maps.Clone(d.pending)
	delete(next, key)
	d.pending = next
	if err := d.commitLocked(); err != nil {
		return Record{}, false, fmt.Errorf("remove %s of container %s: %w", r.IP, key.ContainerID, err)
	}
	return r, true, nil
}

// List implements Store.
func (d *DiskStore) List() []Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	return sortedRecords(d.records)
}

// Close implements Store.
func (d *DiskStore) Close() error { return nil }

func (d *DiskStore) persist(records map[agentapi.AttachmentKey]Record) error {
	data, err := json.MarshalIndent(fileFormat{Version: formatVersion, Records: sortedRecords(records)}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode allocation state: %w", err)
	}
	return writeFileAtomic(d.path, append(data, '\n'), d.hook)
}
