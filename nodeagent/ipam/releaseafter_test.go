package ipam

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// outcome is what ReleaseAfter's done callback reported.
type outcome struct {
	ip  string
	err error
}

// TestReleaseAfterHoldsTheIPUntilUndone proves a deferred release answers
// before its undo runs and frees nothing until the undo (the host veth's
// delete) succeeded: the only IP of the pool is not handed to another pod
// meanwhile, and a failed undo keeps it held.
func TestReleaseAfterHoldsTheIPUntilUndone(t *testing.T) {
	for _, tt := range []struct {
		name    string
		undoErr error
		freed   bool
	}{
		{"undo succeeds: freed after it", nil, true},
		{"undo fails: kept", errors.New("veth delete failed"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := New(store.NewMemStore(), Config{Policy: policy})
			a.UpdatePool(PoolState{Found: true, IPs: ips(1)})
			first, err := a.Allocate(context.Background(), att(1))
			if err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			done := make(chan outcome, 1)
			ip, err := a.ReleaseAfter(att(1).AttachmentKey, func() error { <-release; return tt.undoErr },
				func(ip string, err error) { done <- outcome{ip, err} })
			if err != nil || ip != first.IP {
				t.Fatalf("ReleaseAfter = %q, %v; want %s at once", ip, err, first.IP)
			}
			// The undo has not run: the IP is still held, so another pod
			// waits and gives up (a short wait: the outcome, not its timing,
			// is asserted).
			ctx := WithMaxWait(context.Background(), 50*time.Millisecond)
			if _, err := a.Allocate(ctx, att(2)); codeOf(err) != agentapi.CodeTryAgainLater {
				t.Fatalf("Allocate while the undo runs = %v, want no free IP (code %d)", err, agentapi.CodeTryAgainLater)
			}
			if _, ok := a.Check(att(1).AttachmentKey); !ok {
				t.Fatalf("the record went before the undo ran")
			}
			close(release)
			got := <-done
			if (got.err == nil) != (tt.undoErr == nil) {
				t.Fatalf("done reported %v, undo returned %v", got.err, tt.undoErr)
			}
			_, held := a.Check(att(1).AttachmentKey)
			if held == tt.freed {
				t.Fatalf("record held after the undo = %t, want %t", held, !tt.freed)
			}
			second, err := a.Allocate(ctx, att(2))
			if tt.freed && (err != nil || second.IP != first.IP) {
				t.Fatalf("Allocate after the undo = %v, %v; want %s", second, err, first.IP)
			}
			if !tt.freed && codeOf(err) != agentapi.CodeTryAgainLater {
				t.Fatalf("Allocate after a failed undo = %v, want the IP still held", err)
			}
		})
	}
}

// TestReleaseAfterSerialisesTheSameKey proves an ADD of the same attachment
// arriving while its deferred release runs waits for it (the runtime may ADD
// again after DEL) and then gets a fresh allocation, not the record being
// removed.
func TestReleaseAfterSerialisesTheSameKey(t *testing.T) {
	a := New(store.NewMemStore(), Config{Policy: policy})
	a.UpdatePool(PoolState{Found: true, IPs: ips(2)})
	if _, err := a.Allocate(context.Background(), att(1)); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	undone := false
	if _, err := a.ReleaseAfter(att(1).AttachmentKey, func() error { <-release; undone = true; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	added := make(chan error, 1)
	go func() {
		_, err := a.Allocate(context.Background(), att(1))
		added <- err
	}()
	close(release)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	// Allocate returned only after the key stopped being busy, which is
	// after the undo ran (the race detector checks the read).
	if !undone {
		t.Fatalf("the ADD of the same key did not wait for its release")
	}
	if recs := a.Records(); len(recs) != 1 {
		t.Fatalf("records after release and re-ADD: %+v, want one", recs)
	}
}
