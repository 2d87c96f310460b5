package armpool

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
	"github.com/nicpool/nicpool/nodeagent/poolsource"
)

// selfWrite is the standalone agent's side of nicsync.Write: the grant is
// the allocator's request within the per-VM limit and the local VNet share;
// there is no ledger to settle and no status to write.
type selfWrite struct {
	s *Source
	// maxAdds caps additions after ARM refused a write as full (-1: none).
	maxAdds int
	// full is the refusal that cut additions, for the log.
	full azure.Kind
	// wrote is set once ARM accepted the write.
	wrote bool
}

var _ nicsync.Hooks = (*selfWrite)(nil)

// Running leaves a NIC with a write still running alone; Observe offers
// its new configurations once it succeeded.
func (w *selfWrite) Running(*armnetwork.Interface) {}

// FoundFailed logs the repair Write is about to make.
func (w *selfWrite) FoundFailed(nic *armnetwork.Interface) {
	w.s.cfg.Log.Info("Found the NIC in provisioningState Failed; re-applying its configuration", "nic", nicsync.Deref(nic.ID))
}

// Plan grants the request within the limits and plans the write.
func (w *selfWrite) Plan(configs []nicsync.Config, _ bool) nicsync.Plan {
	s := w.s
	grant := min(s.requested, s.cfg.PerVMLimit, s.cfg.VNetShare)
	return nicsync.Compute(nicsync.Input{
		Configs: configs, Released: s.released, Published: s.published, Grant: grant, MaxAdds: w.maxAdds,
	}, s.cfg.NewName)
}

// Unchanged needs no accounting.
func (w *selfWrite) Unchanged(nicsync.Plan) {}

// Wrote logs the write.
func (w *selfWrite) Wrote(updated *armnetwork.Interface, p nicsync.Plan, repair bool) error {
	w.wrote = true
	w.s.cfg.Log.V(1).Info("Updated the NIC", "nic", nicsync.Deref(updated.ID), "added", len(p.Add), "removed", len(p.Remove),
		"target", p.Target, "repair", repair, "provisioningState", azure.NICProvisioningState(updated))
	return nil
}

// Refused re-reads the NIC after 412, halves the additions after a full
// subnet or NIC, and otherwise ends the pass with an error that says when
// to come back.
func (w *selfWrite) Refused(nic *armnetwork.Interface, p nicsync.Plan, err error, attempt int) (*armnetwork.Interface, error) {
	s := w.s
	err = fmt.Errorf("update nic %s (add %d, remove %d): %w", s.nicID, len(p.Add), len(p.Remove), err)
	switch kind := azure.Classify(err); {
	case kind == azure.KindPreconditionFailed && attempt < maxWriteAttempts:
		fresh, gerr := s.cfg.NICs.GetNIC(context.Background(), s.nicID)
		if gerr != nil {
			return nil, retryable(fmt.Errorf("re-read nic %s after 412: %w", s.nicID, gerr), s.cfg)
		}
		return fresh, nil
	case kind == azure.KindSubnetFull || kind == azure.KindTooManyIPConfigurations:
		if len(p.Add) > 0 {
			// Try half the additions (the removals are still owed).
			w.maxAdds, w.full = len(p.Add)/2, kind
			return nic, nil
		}
		return nil, &poolsource.RetryLater{After: s.cfg.FullRetry, Reason: err.Error()}
	}
	return nil, retryable(err, s.cfg)
}

// retryable turns ARM's refusals that say when to come back (429 with
// Retry-After, 409 AnotherOperationInProgress, a 412 that kept moving)
// into poolsource.RetryLater; other errors are returned as they are.
func retryable(err error, cfg Config) error {
	switch azure.Classify(err) {
	case azure.KindThrottled:
		after, ok := azure.RetryAfter(err)
		if !ok || after <= 0 {
			after = cfg.ThrottleRetry
		}
		return &poolsource.RetryLater{After: after, Reason: err.Error()}
	case azure.KindConflict, azure.KindPreconditionFailed, azure.KindPending:
		return &poolsource.RetryLater{After: cfg.BusyRetry, Reason: err.Error()}
	}
	return err
}
