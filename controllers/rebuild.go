package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// ledgerRebuilder fills the ledger and the NIC claims from every pool's
// status once the operator leads and its caches are synced, before any
// reconcile may grant.
// Pools whose NIC may hold IPs their status misses count their request until
// their first reconcile reads the NIC.
type ledgerRebuilder struct {
	reader client.Reader
	ledger *Ledger
	claims *nicClaims
	perVM  int
}

var _ manager.LeaderElectionRunnable = (*ledgerRebuilder)(nil)

// NeedLeaderElection makes the rebuild run only on the leader.
func (b *ledgerRebuilder) NeedLeaderElection() bool { return true }

// Start rebuilds the ledger and returns.
func (b *ledgerRebuilder) Start(ctx context.Context) error {
	var list nicpoolv1.NodeIPPoolList
	if err := b.reader.List(ctx, &list); err != nil {
		return fmt.Errorf("list pools to rebuild the vnet ledger: %w", err)
	}
	// A pool that lost its NIC to an older pool lists that pool's IPs: they
	// count once, for their owner.
	losers := b.claims.load(list.Items)
	entries := make([]LedgerEntry, 0, len(list.Items))
	for _, p := range list.Items {
		if losers[p.Name] {
			continue
		}
		want := min(int(p.Spec.RequestedIPCount), b.perVM)
		if !p.DeletionTimestamp.IsZero() {
			want = 0 // a deleted pool is given nothing more.
		}
		entries = append(entries, LedgerEntry{
			Pool: p.Name, VNetID: p.Status.VNetID, Held: len(p.Status.IPs), Want: want, Published: publishedShare(&p),
		})
	}
	b.ledger.Rebuild(entries)
	return nil
}

// readyCheck is the readiness probe: a standby replica is ready (it waits for
// the lease); the leader is ready once its ledger is rebuilt.
func readyCheck(mgr manager.Manager, l *Ledger) func(*http.Request) error {
	return func(*http.Request) error {
		select {
		case <-mgr.Elected():
		default:
			return nil
		}
		if !l.IsReady() {
			return errors.New("vnet ledger not rebuilt yet")
		}
		return nil
	}
}

// publishedShare returns the fair share a pool's status shows, or noShare.
func publishedShare(p *nicpoolv1.NodeIPPool) int {
	if v := p.Status.FairShareIPCount; v != nil {
		return int(*v)
	}
	return noShare
}
