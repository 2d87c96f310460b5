package nicsync

import (
	"context"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/azure"
)

// NICWriter writes a NIC. UpdateNIC must send If-Match with nic.Etag (as
// internal/azure's client does), so a write computed from a stale read is
// refused with 412 instead of overwriting another writer's change.
type NICWriter interface {
	UpdateNIC(ctx context.Context, nic *armnetwork.Interface) (*armnetwork.Interface, error)
}

// Hooks is what a caller of Write decides and accounts for at each attempt.
// Write calls them from its own goroutine, one at a time.
type Hooks interface {
	// Running is called when the NIC shows a write still running
	// (provisioningState Updating): nothing is written, ARM would refuse
	// with 409.
	Running(nic *armnetwork.Interface)
	// FoundFailed is called when the NIC was read in provisioningState
	// Failed; Write then re-applies its configuration even with an empty
	// plan, which is how Azure repairs such a NIC.
	FoundFailed(nic *armnetwork.Interface)
	// Plan decides this attempt's change from the NIC's configurations;
	// failed says a repair write follows even when the plan is empty.
	Plan(configs []Config, failed bool) Plan
	// Unchanged is called when the plan is empty and the NIC healthy.
	Unchanged(p Plan)
	// Wrote records a successful write; updated is the NIC ARM returned.
	// Its error ends Write.
	Wrote(updated *armnetwork.Interface, p Plan, repair bool) error
	// Refused decides after a refused write (err wraps ARM's answer): the
	// NIC to try again with (re-read after 412, or nic itself with fewer
	// additions after a full subnet), or nil and the error Write returns.
	Refused(nic *armnetwork.Interface, p Plan, err error, attempt int) (*armnetwork.Interface, error)
}

// Write makes the one NIC write a pass needs: plan from the NIC as read,
// write with If-Match, and on refusal let h decide whether to try again
// with a fresh read. It returns the last NIC it knows (the one ARM returned
// after a successful write, the one read otherwise) and h's error. The
// NIC's configuration list is restored after a refused write, so the caller
// never sees a planned but unwritten list.
func Write(ctx context.Context, nics NICWriter, nic *armnetwork.Interface, subnetID string, h Hooks) (*armnetwork.Interface, error) {
	for attempt := 1; ; attempt++ {
		state := azure.NICProvisioning(nic)
		if state == azure.ProvisioningInProgress {
			h.Running(nic)
			return nic, nil
		}
		failed := state == azure.ProvisioningFailed
		if failed {
			h.FoundFailed(nic)
		}
		p := h.Plan(Configs(nic), failed)
		if p.Empty() && !failed {
			h.Unchanged(p)
			return nic, nil
		}
		orig := nic.Properties.IPConfigurations
		nic.Properties.IPConfigurations = Apply(nic, p, subnetID)
		updated, werr := nics.UpdateNIC(ctx, nic)
		if werr == nil {
			return updated, h.Wrote(updated, p, failed)
		}
		nic.Properties.IPConfigurations = orig
		retry, err := h.Refused(nic, p, werr, attempt)
		if retry == nil {
			return nic, err
		}
		nic = retry
	}
}
