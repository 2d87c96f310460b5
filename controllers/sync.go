package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
)

// syncPass is what one syncNIC decides from, and what it learned so far.
type syncPass struct {
	vnet, subnetID string
	released       map[string]bool
	published      map[string]string
	requested      int
	want           int
	// maxAdds caps additions (-1: no cap): the subnet's remembered room,
	// then halved after each write ARM refused as full.
	maxAdds int
	// full is KindSubnetFull or KindTooManyIPConfigurations once ARM refused
	// a write of this pass for that reason.
	full azure.Kind
	// repairTried is true once the pass wrote to a Failed NIC.
	repairTried bool
}

// syncNIC makes one NIC write with every addition and removal the pool needs,
// re-reading and recomputing on 412, and records in the status the NIC's
// nicpool IPs whose write succeeded. Quota is reserved before the write and
// settled after it. A NIC whose provisioningState says a write is still
// running is only read; one left Failed is repaired by re-applying its
// desired configuration, and what the failed write added stays out of the
// status until then.
func (r *PoolReconciler) syncNIC(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, o *outcome) (ctrl.Result, error) {
	released, published := agentView(pool)
	requested := int(pool.Spec.RequestedIPCount)
	sp := &syncPass{
		vnet: pool.Status.VNetID, subnetID: pool.Status.SubnetID, released: released, published: published,
		requested: requested, want: min(requested, r.PerVMLimit), full: azure.KindOther,
		maxAdds: r.subnets.maxAdds(pool.Status.SubnetID, time.Now(), r.subnetRoomTTL()),
	}
	var res ctrl.Result
	var err error
	for attempt := 1; ; attempt++ {
		state := azure.NICProvisioning(nic)
		if state == azure.ProvisioningInProgress {
			r.Ledger.Settle(pool.Name, sp.vnet, countOwned(nicConfigs(nic)))
			res = r.writeRunning(pool, nic, o)
			break
		}
		failed := state == azure.ProvisioningFailed
		if failed {
			r.foundFailed(ctx, nic, o)
		}
		configs := nicConfigs(nic)
		grant := r.Ledger.Reserve(pool.Name, sp.vnet, countOwned(configs), sp.want)
		p := computePlan(planInput{Configs: configs, Released: released, Published: published, Grant: grant, MaxAdds: sp.maxAdds}, r.newName)
		r.setLimit(o, requested, grant, p, sp.limitKind(p))
		if p.empty() && !failed {
			r.Ledger.Settle(pool.Name, sp.vnet, p.Held)
			break
		}
		sp.repairTried = sp.repairTried || failed
		orig := nic.Properties.IPConfigurations
		nic.Properties.IPConfigurations = applyPlan(nic, p, sp.subnetID)
		updated, werr := r.NICs.UpdateNIC(ctx, nic)
		if werr == nil {
			nic = updated
			r.wrote(ctx, pool, nic, p, sp, o, failed)
			if r.afterNICWrite != nil {
				if herr := r.afterNICWrite(pool.Name); herr != nil {
					return ctrl.Result{}, herr
				}
			}
			break
		}
		nic.Properties.IPConfigurations = orig
		next := r.writeRefused(ctx, pool, nic, sp, o, p, grant, werr, attempt)
		switch {
		case next.retry != nil:
			nic = next.retry
			continue
		case next.abort:
			return next.res, next.err
		}
		res, err = next.res, next.err
		break
	}
	if withheld := r.publish(pool, nic, sp); withheld > 0 && err == nil && res.IsZero() {
		// The NIC a write returned shows another write already running.
		res = ctrl.Result{RequeueAfter: r.PendingRetry}
	}
	if o.repair != "" {
		nicRepairs.WithLabelValues(o.repair).Inc()
	}
	if err == nil && res.IsZero() && (o.limitReason == nicpoolv1.ReasonVNetLimit || o.limitReason == nicpoolv1.ReasonSubnetFull) {
		res = ctrl.Result{RequeueAfter: r.LimitRetry}
	}
	return res, err
}

// afterRefusal is what a pass does after a failed NIC write: try again with
// retry, or end with res and err, without publishing when abort (the re-read
// of the NIC failed, so the pass knows nothing newer than its status).
type afterRefusal struct {
	retry *armnetwork.Interface
	abort bool
	res   ctrl.Result
	err   error
}

// writeRefused handles a failed NIC write.
func (r *PoolReconciler) writeRefused(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, sp *syncPass, o *outcome, p plan, grant int, werr error, attempt int) afterRefusal {
	reread := func() afterRefusal {
		fresh, err := r.NICs.GetNIC(ctx, pool.Status.NICID)
		if err != nil {
			res, err := r.armFailure(pool, o, err, false)
			return afterRefusal{abort: true, res: res, err: err}
		}
		return afterRefusal{retry: fresh}
	}
	werr = fmt.Errorf("update nic %s of pool %s: %w", pool.Status.NICID, pool.Name, werr)
	kind := azure.Classify(werr)
	switch {
	case kind == azure.KindPreconditionFailed && attempt < maxWriteAttempts:
		r.Ledger.Cancel(pool.Name)
		return reread()
	case kind == azure.KindSubnetFull || kind == azure.KindTooManyIPConfigurations:
		// ARM refused the whole write: try half the additions (the removals
		// are still owed), down to none. The subnet's refusal is remembered,
		// so the next passes start from what it can still give.
		r.Ledger.Cancel(pool.Name)
		if kind == azure.KindSubnetFull {
			r.subnets.refused(sp.subnetID, len(p.Add), time.Now())
		}
		sp.maxAdds, sp.full = len(p.Add)/2, kind
		r.setLimit(o, sp.requested, grant, p, sp.full)
		if len(p.Add) > 0 {
			return afterRefusal{retry: nic}
		}
	case kind == azure.KindOperationFailed:
		// ARM applied the write and left the NIC Failed: its configurations
		// count against the quota until a read settles them. Read it and
		// re-apply it at once, unless this pass already tried.
		nicFailures.WithLabelValues(failedByWrite).Inc()
		if o.failedBy == "" {
			o.failedBy = failedByWrite
		}
		if !sp.repairTried && attempt < maxWriteAttempts {
			return reread()
		}
		return r.stillFailed(ctx, pool, o, werr)
	case kind == azure.KindPending || kind == azure.KindOther:
		// The write may have happened: keep the reservation until the
		// next read of the NIC settles it.
	default:
		r.Ledger.Cancel(pool.Name)
	}
	res, err := r.armFailure(pool, o, werr, true)
	switch {
	case sp.repairTried && kind == azure.KindPending:
		// The repair is running: the next pass sees how it ends.
		o.nicFailed = false
	case sp.repairTried:
		// The repair itself was refused (throttled, conflict...): the NIC
		// is still Failed.
		o.nicFailed, o.repair = true, repairFailed
	}
	return afterRefusal{res: res, err: err}
}

// wrote records a successful NIC write: quota, subnet room, and a repair.
func (r *PoolReconciler) wrote(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, p plan, sp *syncPass, o *outcome, repair bool) {
	r.Ledger.Settle(pool.Name, sp.vnet, countOwned(nicConfigs(nic)))
	r.subnets.wrote(sp.subnetID, len(p.Add), len(p.Remove))
	if !repair {
		return
	}
	o.nicFailed = azure.NICProvisioning(nic) == azure.ProvisioningFailed
	if o.nicFailed {
		o.repair = repairFailed
		return
	}
	o.repair = repairSucceeded
	ctrl.LoggerFrom(ctx).Info("Re-applied a NIC left in provisioningState Failed", "nic", deref(nic.ID),
		"provisioningState", azure.NICProvisioningState(nic))
}

// foundFailed records that the pass read the NIC in provisioningState
// Failed: left so by an earlier write (before a restart, or by another
// client), or by this pass's own write.
func (r *PoolReconciler) foundFailed(ctx context.Context, nic *armnetwork.Interface, o *outcome) {
	o.nicFailed = true
	if o.failedBy == "" {
		o.failedBy = failedByRead
		nicFailures.WithLabelValues(failedByRead).Inc()
	}
	ctrl.LoggerFrom(ctx).Info("Found NIC in provisioningState Failed; re-applying its configuration",
		"nic", deref(nic.ID), "leftBy", o.failedBy)
}

// stillFailed ends a pass whose NIC stays Failed after a repair that failed
// too: Ready=False and Degraded=True say so, and the repair is retried after
// LimitRetry rather than with a growing backoff, so the NIC is not left
// Failed for long once ARM recovers.
func (r *PoolReconciler) stillFailed(ctx context.Context, pool *nicpoolv1.NodeIPPool, o *outcome, err error) afterRefusal {
	o.failed(ReasonProvisioningFailed, azure.KindOperationFailed, err)
	o.nicFailed, o.repair = true, repairFailed
	ctrl.LoggerFrom(ctx).Error(err, "Failed to repair a NIC left in provisioningState Failed; retrying later",
		"pool", pool.Name, "retryAfter", r.LimitRetry)
	return afterRefusal{res: ctrl.Result{RequeueAfter: r.LimitRetry}}
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
func (r *PoolReconciler) publish(pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, sp *syncPass) int {
	configs := nicConfigs(nic)
	settled := azure.NICProvisioning(nic) == azure.ProvisioningSucceeded
	pool.Status.IPs = publishIPs(configs, sp.released, sp.published, settled)
	pool.Status.AllocatedIPCount = int32(len(pool.Status.IPs))
	withheld := len(publishIPs(configs, sp.released, sp.published, true)) - len(pool.Status.IPs)
	nodeIPsWithheld.WithLabelValues(pool.Name).Set(float64(withheld))
	return withheld
}

// limitKind is the refusal setLimit reports: ARM's, or a full subnet when
// the remembered room cut the plan's additions.
func (sp *syncPass) limitKind(p plan) azure.Kind {
	if sp.full == azure.KindOther && p.AddCapped {
		return azure.KindSubnetFull
	}
	return sp.full
}

// subnetRoomTTL is how long a full subnet's remembered room is trusted.
func (r *PoolReconciler) subnetRoomTTL() time.Duration {
	if r.LimitRetry <= 0 {
		return time.Minute
	}
	return subnetRoomIntervals * r.LimitRetry
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
