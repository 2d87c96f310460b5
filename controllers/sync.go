package controllers

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
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
	// attach is what the pass decided about spec.attachments.
	attach *attachPass
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
	svcPools, err := r.serviceWants(ctx, pool)
	if err != nil {
		return ctrl.Result{}, err
	}
	sp := &syncPass{
		vnet: pool.Status.VNetID, subnetID: pool.Status.SubnetID, released: released, published: published,
		requested: requested, want: min(requested, r.PerVMLimit), full: azure.KindOther,
		maxAdds: r.subnets.maxAdds(pool.Status.SubnetID, time.Now(), r.subnetRoomTTL()),
		attach:  r.prepareAttachments(pool, nic, svcPools, time.Now()),
	}
	o.attach = sp.attach
	if err := r.createPublicIPs(ctx, pool, nic, sp.attach); err != nil {
		return ctrl.Result{}, err
	}
	w := &poolWrite{r: r, ctx: ctx, pool: pool, sp: sp, o: o}
	nic, err = nicsync.Write(ctx, r.NICs, nic, sp.subnetID, w)
	if w.abort {
		r.known.forget(deref(nic.ID))
		return w.res, err
	}
	res := w.res
	if err == nil && o.armErr == nil {
		r.known.remember(nic, time.Now())
	} else {
		r.known.forget(deref(nic.ID))
	}
	if withheld := r.publish(pool, nic, sp); withheld > 0 && err == nil && res.IsZero() {
		// The NIC a write returned shows another write already running.
		res = ctrl.Result{RequeueAfter: r.PendingRetry}
	}
	if sp.attach.settled {
		r.deleteCreatedPublicIPs(ctx, nic, sp.attach)
	}
	r.recordAttachments(pool, nic, sp.attach)
	if err == nil && res.IsZero() && (len(sp.attach.refused) > 0 || sp.attach.deletesOwed()) {
		// A refused request, or a created public IP still to delete, is
		// retried after LimitRetry.
		res = ctrl.Result{RequeueAfter: r.LimitRetry}
	}
	if o.repair != "" {
		nicRepairs.WithLabelValues(o.repair).Inc()
	}
	if err == nil && res.IsZero() && (o.limitReason == nicpoolv1.ReasonVNetLimit || o.limitReason == nicpoolv1.ReasonSubnetFull) {
		res = ctrl.Result{RequeueAfter: r.LimitRetry}
	}
	if ttl := cmp.Or(r.knownTTL, defaultKnownNICTTL); err == nil && sp.attach.asksASGs() && (res.IsZero() || res.RequeueAfter > ttl) {
		// An administrator may move the NIC to other ASGs (all its IP
		// configurations at once, as Azure requires) and ARM tells no one:
		// pass again once the remembered NIC is too old to stand in for a
		// read, so Applied/Refused follows the NIC's ASGs.
		res = ctrl.Result{RequeueAfter: ttl}
	}
	return res, err
}

// poolWrite is the operator's side of one pass's NIC write loop
// (nicsync.Write): the VNet ledger's reservation, the pool's conditions and
// the test hook after a write.
type poolWrite struct {
	r    *PoolReconciler
	ctx  context.Context
	pool *nicpoolv1.NodeIPPool
	sp   *syncPass
	o    *outcome
	// grant is the last attempt's reservation.
	grant int
	// res ends the pass; abort ends it without publishing.
	res   ctrl.Result
	abort bool
}

var _ nicsync.Hooks = (*poolWrite)(nil)

// Running settles the quota from the NIC as read and polls until the
// running write ends.
func (w *poolWrite) Running(nic *armnetwork.Interface) {
	w.r.Ledger.Settle(w.pool.Name, w.sp.vnet, nicsync.CountOwned(nicsync.Configs(nic)))
	w.res = w.r.writeRunning(w.pool, nic, w.o)
}

// FoundFailed records a NIC read in provisioningState Failed.
func (w *poolWrite) FoundFailed(nic *armnetwork.Interface) { w.r.foundFailed(w.ctx, nic, w.o) }

// Plan reserves quota for the attempt and plans the write within it.
func (w *poolWrite) Plan(configs []nicsync.Config, failed bool) nicsync.Plan {
	sp := w.sp
	w.grant = w.r.Ledger.Reserve(w.pool.Name, sp.vnet, nicsync.CountOwned(configs), sp.want)
	p := nicsync.Compute(nicsync.Input{Configs: configs, Released: sp.released, Published: sp.published, Grant: w.grant, MaxAdds: sp.maxAdds}, w.r.newName)
	// Pod attachments ride in the same write.
	p.Attach = attachChanges(attachInput{Configs: configs, Removed: p.Remove, Published: sp.published,
		Wants: sp.attach.wants, Hold: sp.attach.hold, NICASGs: nicsync.PrimaryASGs(configs)})
	w.r.setLimit(w.o, sp.requested, w.grant, p, sp.limitKind(p))
	sp.repairTried = sp.repairTried || failed
	return p
}

// Unchanged settles the quota at what the NIC holds.
func (w *poolWrite) Unchanged(p nicsync.Plan) {
	w.r.Ledger.Settle(w.pool.Name, w.sp.vnet, p.Held)
	w.sp.attach.settled = true
}

// Wrote records the write and runs the test hook, whose error abandons the
// pass before the status write (a crash).
func (w *poolWrite) Wrote(updated *armnetwork.Interface, p nicsync.Plan, repair bool) error {
	w.sp.attach.settled = true
	w.r.wrote(w.ctx, w.pool, updated, p, w.sp, w.o, repair)
	if w.r.afterNICWrite != nil {
		if err := w.r.afterNICWrite(w.pool.Name); err != nil {
			w.res, w.abort = ctrl.Result{}, true
			return err
		}
	}
	return nil
}

// Refused decides what follows a refused write (writeRefused).
func (w *poolWrite) Refused(nic *armnetwork.Interface, p nicsync.Plan, werr error, attempt int) (*armnetwork.Interface, error) {
	next := w.r.writeRefused(w.ctx, w.pool, nic, w.sp, w.o, p, w.grant, werr, attempt)
	w.res, w.abort = next.res, next.abort
	return next.retry, next.err
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
func (r *PoolReconciler) writeRefused(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, sp *syncPass, o *outcome, p nicsync.Plan, grant int, werr error, attempt int) afterRefusal {
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
	if attachmentRefused(p, werr) {
		// ARM refused what the write attached: hold those requests and
		// write the rest (additions and releases are still owed).
		r.Ledger.Cancel(pool.Name)
		for _, ip := range blame(p, nicsync.Configs(nic), werr) {
			r.refuseAttachment(pool, sp.attach, ip, sp.attach.wants[ip], armCode(werr), werr.Error(), time.Now())
		}
		return afterRefusal{retry: nic}
	}
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
func (r *PoolReconciler) wrote(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, p nicsync.Plan, sp *syncPass, o *outcome, repair bool) {
	r.Ledger.Settle(pool.Name, sp.vnet, nicsync.CountOwned(nicsync.Configs(nic)))
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
	configs := nicsync.Configs(nic)
	settled := azure.NICProvisioning(nic) == azure.ProvisioningSucceeded
	pool.Status.IPs = nicsync.Publish(configs, sp.released, sp.published, settled)
	pool.Status.AllocatedIPCount = int32(len(pool.Status.IPs))
	withheld := len(nicsync.Publish(configs, sp.released, sp.published, true)) - len(pool.Status.IPs)
	nodeIPsWithheld.WithLabelValues(pool.Name).Set(float64(withheld))
	return withheld
}

// limitKind is the refusal setLimit reports: ARM's, or a full subnet when
// the remembered room cut the plan's additions.
func (sp *syncPass) limitKind(p nicsync.Plan) azure.Kind {
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
func (r *PoolReconciler) setLimit(o *outcome, requested, grant int, p nicsync.Plan, full azure.Kind) {
	o.limitReason, o.limitMsg = "", ""
	if p.Target >= requested {
		return
	}
	switch {
	case full == azure.KindSubnetFull:
		o.limitReason, o.limitMsg = nicpoolv1.ReasonSubnetFull, fmt.Sprintf("the subnet has no free address; %d of %d IPs", p.Target, requested)
	case full == azure.KindTooManyIPConfigurations || p.NICCapped:
		o.limitReason, o.limitMsg = nicpoolv1.ReasonPerVMLimit, fmt.Sprintf("the NIC holds Azure's maximum of %d IP configurations; %d of %d IPs", nicsync.MaxIPConfigsPerNIC, p.Target, requested)
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
