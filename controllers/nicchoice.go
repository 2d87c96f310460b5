package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// chooseNIC returns the NIC this pass works on. It is the resolved one
// (spec.nicID, status.nicID or the VM's NIC), except while the pool holds
// IPs on the NIC in status.nicID and the resolved one differs: the pool
// stays where its pods' IPs are (Ready=False, NICChangePending) until the
// agent has released them all. The API server refuses such a spec.nicID
// change; this covers a CRD installed without that rule. A pool that holds no
// IP moves: nicpool's configurations left on the old NIC are removed first,
// so none is stranded there. "" (with o set) means the pool cannot be served.
func (r *PoolReconciler) chooseNIC(ctx context.Context, pool *nicpoolv1.NodeIPPool, o *outcome) (string, ctrl.Result, error) {
	nicID, res, err := r.resolveNIC(ctx, pool, o)
	if nicID == "" || err != nil {
		return "", res, err
	}
	old := pool.Status.NICID
	moving := old != "" && !strings.EqualFold(old, nicID)
	if moving && len(pool.Status.IPs) > 0 {
		o.readyReason, o.readyMsg = nicpoolv1.ReasonNICChangePending, fmt.Sprintf(
			"spec.nicID names %s, but the pool's %d IPs are on %s, where its pods use them: it stays there until the agent has released them all",
			nicID, len(pool.Status.IPs), old)
		nicID, moving = old, false
	}
	if err := r.Scope.Allows(nicID); err != nil {
		// Only a new spec.nicID, providerID or operator scope can change
		// this; those changes retrigger the pass.
		o.readyReason, o.readyMsg = ReasonOutOfScope, err.Error()
		return "", ctrl.Result{}, nil
	}
	if !moving {
		return nicID, ctrl.Result{}, nil
	}
	if r.claims.owns(pool.Name, old) {
		if res, err := r.releaseAll(ctx, pool, old); err != nil || !res.IsZero() {
			return "", res, err
		}
	}
	ctrl.LoggerFrom(ctx).Info("Moved NodeIPPool to another NIC", "from", old, "to", nicID)
	r.claims.release(pool.Name)
	r.Ledger.Forget(pool.Name)
	clearIdentity(&pool.Status)
	return nicID, ctrl.Result{}, nil
}

// refuse turns a pool away from a NIC another pool serves: it publishes no IP
// (they are the other pool's), counts nothing against the VNet quota and
// writes nothing to the NIC. It is woken when the NIC becomes free, and
// retries at LimitRetry in case that wake-up is lost.
func (r *PoolReconciler) refuse(pool *nicpoolv1.NodeIPPool, nicID, owner string, o *outcome) ctrl.Result {
	o.readyReason, o.readyMsg = nicpoolv1.ReasonNICInUse, fmt.Sprintf(
		"NIC %s already serves NodeIPPool %s and one NIC serves one pool: this pool gets no IPs; "+
			"set spec.nicID to the node's own NIC, or fix or delete pool %s", nicID, owner, owner)
	clearIdentity(&pool.Status)
	r.Ledger.Forget(pool.Name)
	return ctrl.Result{RequeueAfter: r.LimitRetry}
}

// clearIdentity forgets the pool's NIC and everything read from it.
func clearIdentity(st *nicpoolv1.NodeIPPoolStatus) {
	st.NICID, st.NICName, st.SubnetID, st.SubnetCIDR, st.VNetID = "", "", "", "", ""
	st.VNetAddressSpace, st.PrimaryIP = nil, ""
	st.IPs, st.AllocatedIPCount = nil, 0
}

// readyReason returns the reason of the pool's Ready condition, or "".
func readyReason(pool *nicpoolv1.NodeIPPool) string {
	c := meta.FindStatusCondition(pool.Status.Conditions, nicpoolv1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse {
		return ""
	}
	return c.Reason
}

// emitReadyEvent records a Warning when the pool starts being refused its
// NIC, held on its old NIC, or kept for a live Node after deletion.
func (r *PoolReconciler) emitReadyEvent(pool *nicpoolv1.NodeIPPool, prev string, o *outcome) {
	if r.Recorder == nil || o.readyReason == prev {
		return
	}
	switch o.readyReason {
	case nicpoolv1.ReasonNICInUse, nicpoolv1.ReasonNICChangePending, nicpoolv1.ReasonDeletionPending:
		r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, o.readyReason, "Reconcile", "%s", truncate(o.readyMsg))
	}
}
