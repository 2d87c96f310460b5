package controllers

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
)

// syncNIC makes one NIC write with every addition and removal the pool needs,
// re-reading and recomputing on 412, and records in the status the NIC's
// nicpool IPs whose write succeeded. Quota is reserved before the write and
// settled after it. A NIC whose provisioningState says a write is still
// running is only read.
func (r *PoolReconciler) syncNIC(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, o *outcome) (ctrl.Result, error) {
	vnet, subnetID := pool.Status.VNetID, pool.Status.SubnetID
	released, published := agentView(pool)
	requested := int(pool.Spec.RequestedIPCount)
	want := min(requested, r.PerVMLimit)
	maxAdds, full := -1, azure.KindOther
	var res ctrl.Result
	var err error
	for attempt := 1; ; attempt++ {
		if azure.NICProvisioning(nic) == azure.ProvisioningInProgress {
			r.Ledger.Settle(pool.Name, vnet, countOwned(nicConfigs(nic)))
			res = r.writeRunning(pool, nic, o)
			break
		}
		configs := nicConfigs(nic)
		grant := r.Ledger.Reserve(pool.Name, vnet, countOwned(configs), want)
		p := computePlan(planInput{Configs: configs, Released: released, Published: published, Grant: grant, MaxAdds: maxAdds}, r.newName)
		r.setLimit(o, requested, grant, p, full)
		if p.empty() {
			r.Ledger.Settle(pool.Name, vnet, p.Held)
			break
		}
		orig := nic.Properties.IPConfigurations
		nic.Properties.IPConfigurations = applyPlan(nic, p, subnetID)
		updated, werr := r.NICs.UpdateNIC(ctx, nic)
		if werr == nil {
			nic = updated
			r.Ledger.Settle(pool.Name, vnet, countOwned(nicConfigs(nic)))
			if r.afterNICWrite != nil {
				if herr := r.afterNICWrite(pool.Name); herr != nil {
					return ctrl.Result{}, herr
				}
			}
			break
		}
		nic.Properties.IPConfigurations = orig
		kind := azure.Classify(werr)
		switch {
		case kind == azure.KindPreconditionFailed && attempt < maxWriteAttempts:
			r.Ledger.Cancel(pool.Name)
			if nic, werr = r.NICs.GetNIC(ctx, pool.Status.NICID); werr != nil {
				return r.armFailure(pool, o, werr, false)
			}
			continue
		case kind == azure.KindSubnetFull || kind == azure.KindTooManyIPConfigurations:
			// ARM refused the whole write: try half the additions (the
			// removals are still owed), down to none; at most ~log2(256) tries.
			r.Ledger.Cancel(pool.Name)
			maxAdds, full = len(p.Add)/2, kind
			r.setLimit(o, requested, grant, p, full)
			if len(p.Add) > 0 {
				continue
			}
		case kind == azure.KindPending || kind == azure.KindOther:
			// The write may have happened: keep the reservation until the
			// next read of the NIC settles it.
		default:
			r.Ledger.Cancel(pool.Name)
		}
		res, err = r.armFailure(pool, o, fmt.Errorf("update nic %s of pool %s: %w", pool.Status.NICID, pool.Name, werr), true)
		break
	}
	if withheld := publish(pool, nic, released, published); withheld > 0 && err == nil && res.IsZero() {
		// The NIC a write returned shows another write already running.
		res = ctrl.Result{RequeueAfter: r.PendingRetry}
	}
	if err == nil && res.IsZero() && (o.limitReason == nicpoolv1.ReasonVNetLimit || o.limitReason == nicpoolv1.ReasonSubnetFull) {
		res = ctrl.Result{RequeueAfter: r.LimitRetry}
	}
	return res, err
}

// writeRunning ends a pass that found a write still running on the NIC
// (Updating): nothing is written (ARM would refuse with 409) and the NIC is
// polled until the write settles. The LimitReached condition keeps what the
// last pass found.
func (r *PoolReconciler) writeRunning(pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, o *outcome) ctrl.Result {
	o.readyReason = ReasonPending
	o.readyMsg = fmt.Sprintf("NIC %s is in provisioningState %s: a write is still running; the IPs it adds are withheld until it succeeds",
		deref(nic.ID), azure.NICProvisioningState(nic))
	if c := meta.FindStatusCondition(pool.Status.Conditions, nicpoolv1.ConditionLimitReached); c != nil && c.Status == metav1.ConditionTrue {
		o.limitReason, o.limitMsg = c.Reason, c.Message
	}
	return ctrl.Result{RequeueAfter: r.PendingRetry}
}

// publish records in the status the NIC's nicpool IPs whose write succeeded,
// and returns how many others it withheld.
func publish(pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, released map[string]bool, published map[string]string) int {
	configs := nicConfigs(nic)
	settled := azure.NICProvisioning(nic) == azure.ProvisioningSucceeded
	pool.Status.IPs = publishIPs(configs, released, published, settled)
	pool.Status.AllocatedIPCount = int32(len(pool.Status.IPs))
	withheld := len(publishIPs(configs, released, published, true)) - len(pool.Status.IPs)
	nodeIPsWithheld.WithLabelValues(pool.Name).Set(float64(withheld))
	return withheld
}

// setLimit records why the pool gets fewer IPs than requested, if it does.
// full is KindSubnetFull or KindTooManyIPConfigurations after ARM refused
// additions for those reasons.
func (r *PoolReconciler) setLimit(o *outcome, requested, grant int, p plan, full azure.Kind) {
	o.limitReason, o.limitMsg = "", ""
	if p.Target >= requested {
		return
	}
	switch {
	case full == azure.KindSubnetFull:
		o.limitReason, o.limitMsg = nicpoolv1.ReasonSubnetFull, fmt.Sprintf("the subnet has no free address; %d of %d IPs", p.Target, requested)
	case full == azure.KindTooManyIPConfigurations || p.NICCapped:
		o.limitReason, o.limitMsg = nicpoolv1.ReasonPerVMLimit, fmt.Sprintf("the NIC holds Azure's maximum of %d IP configurations; %d of %d IPs", maxIPConfigsPerNIC, p.Target, requested)
	case requested > r.PerVMLimit && grant >= r.PerVMLimit:
		o.limitReason, o.limitMsg = nicpoolv1.ReasonPerVMLimit, fmt.Sprintf("requested %d IPs, the per-VM limit is %d", requested, r.PerVMLimit)
	case grant < min(requested, r.PerVMLimit):
		o.limitReason, o.limitMsg = nicpoolv1.ReasonVNetLimit, fmt.Sprintf("granted %d of %d IPs: the VNet quota of %d is shared by its nodes", grant, requested, r.Ledger.Limit())
	}
}

// agentView returns the IPs the agent released and the configuration name
// status.ips published for each IP.
func agentView(pool *nicpoolv1.NodeIPPool) (released map[string]bool, published map[string]string) {
	released, published = map[string]bool{}, map[string]string{}
	for _, ip := range pool.Spec.IPsNotInUse {
		released[string(ip)] = true
	}
	for _, p := range pool.Status.IPs {
		published[string(p.IP)] = p.IPConfiguration
	}
	return released, published
}
