package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitForOpenBatch waits until n changes wait in the open batch.
func waitForOpenBatch(t *testing.T, s *DiskStore, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for openBatchChanges(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d changes never queued behind the write in flight (%d did)", n, openBatchChanges(s))
		}
		time.Sleep(time.Millisecond)
	}
}

// openBatchChanges returns how many changes wait in the open batch; -1
// while the store's lock is taken (a store that wrote with its lock held
// would otherwise hang the test instead of failing it).
func openBatchChanges(s *DiskStore) int {
	if !s.mu.TryLock() {
		return -1
	}
	defer s.mu.Unlock()
	if s.open == nil {
		return 0
	}
	return s.open.changes
}

// Concurrent allocations share writes: while one write is held at its
// fsync, 49 more Adds queue up, and all of them go to disk in one more
// write. Every Add returns only after a write that started after it was
// called has finished (its change was fsynced before the reply), and the
// reopened store holds them all.
func TestDiskStoreGroupCommit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var started, finished atomic.Int64
	release := make(chan struct{})
	var first sync.Once
	s.hook = func(step string) error {
		switch step {
		case stepCreateTemp:
			started.Add(1)
		case stepFsync:
			first.Do(func() { <-release })
		case stepDone:
			finished.Add(1)
		}
		return nil
	}
	const n = 50
	var wg sync.WaitGroup
	add := func(i int) {
		defer wg.Done()
		before := started.Load()
		if _, err := s.Add(rec(fmt.Sprint("c", i), fmt.Sprintf("10.0.1.%d", i))); err != nil {
			t.Error(err)
			return
		}
		// A write that began after this Add was called must be complete.
		if finished.Load() <= before {
			t.Errorf("Add of c%d returned before a write started after it finished (started %d before, finished %d)", i, before, finished.Load())
		}
	}
	wg.Add(1)
	go add(0)
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go add(i)
	}
	waitForOpenBatch(t, s, n-1)
	close(release)
	wg.Wait()
	if got := started.Load(); got != 2 {
		t.Errorf("%d concurrent Adds took %d writes, want 2 (one held, one for the other %d)", n, got, n-1)
	}
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s2.List()); got != n {
		t.Errorf("reopened store has %d records, want %d", got, n)
	}
}

// Get and List show only what is on disk: a change whose write is still in
// flight is invisible, and a second Add of the same key waits for the
// first one's write instead of answering from memory.
func TestDiskStoreShowsOnlyDurableState(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	atFsync := make(chan struct{}, 1)
	s.hook = func(step string) error {
		if step == stepFsync {
			atFsync <- struct{}{}
			<-hold
		}
		return nil
	}
	done := make(chan error, 2)
	go func() { _, err := s.Add(rec("a", "10.0.0.1")); done <- err }()
	<-atFsync
	if _, ok := s.Get(rec("a", "").AttachmentKey); ok || len(s.List()) != 0 {
		t.Errorf("a record whose write is in flight is visible")
	}
	go func() { _, err := s.Add(rec("a", "10.0.0.1")); done <- err }()
	waitForOpenBatch(t, s, 1)
	select {
	case err := <-done:
		t.Fatalf("an Add returned (%v) while the write was held", err)
	default:
	}
	s.hook = nil
	close(hold)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.Get(rec("a", "").AttachmentKey); !ok {
		t.Errorf("the record is not visible after its write")
	}
}

// When a write fails, the changes in it and those that queued behind it all
// fail, and the store keeps what is on disk.
func TestDiskStoreGroupCommitFailure(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	atFsync := make(chan struct{}, 1)
	var fail atomic.Bool
	fail.Store(true)
	s.hook = func(step string) error {
		if step == stepFsync && fail.Load() {
			atFsync <- struct{}{}
			<-hold
			return errors.New("disk full")
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() { _, err := s.Add(rec("a", "10.0.0.1")); errs <- err }()
	<-atFsync
	go func() { _, err := s.Add(rec("b", "10.0.0.2")); errs <- err }()
	waitForOpenBatch(t, s, 1)
	fail.Store(false)
	close(hold)
	for range 2 {
		if err := <-errs; err == nil {
			t.Errorf("an Add succeeded although the write it joined or queued behind failed")
		}
	}
	if len(s.List()) != 0 {
		t.Errorf("records after failed writes: %v", s.List())
	}
	if _, err := s.Add(rec("b", "10.0.0.2")); err != nil {
		t.Errorf("Add after the failure: %v", err)
	}
}
