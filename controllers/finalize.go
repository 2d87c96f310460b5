package controllers

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
)

// finalize removes every nicpool IP configuration from the pool's NIC (a
// missing NIC counts as done), returns the pool's quota and lets the pool go.
// The pool (or its Node) is going away, so no pod keeps an IP of it.
func (r *PoolReconciler) finalize(ctx context.Context, pool *nicpoolv1.NodeIPPool) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(pool, nicpoolv1.FinalizerName) {
		return ctrl.Result{}, nil
	}
	nicID := pool.Spec.NICID
	if nicID == "" {
		nicID = pool.Status.NICID
	}
	if nicID != "" {
		if res, err := r.releaseAll(ctx, pool, nicID); err != nil || !res.IsZero() {
			return res, err
		}
	}
	r.Ledger.Forget(pool.Name)
	poolConditions.update(pool.Name, nil)
	patch := client.MergeFrom(pool.DeepCopy())
	controllerutil.RemoveFinalizer(pool, nicpoolv1.FinalizerName)
	if err := r.Patch(ctx, pool, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(fmt.Errorf("remove finalizer from pool %s: %w", pool.Name, err))
	}
	return ctrl.Result{}, nil
}

// releaseAll removes the pool's configurations from the NIC in one write,
// re-reading on 412. A zero result and nil error mean done.
func (r *PoolReconciler) releaseAll(ctx context.Context, pool *nicpoolv1.NodeIPPool, nicID string) (ctrl.Result, error) {
	o := &outcome{}
	for attempt := 1; ; attempt++ {
		nic, err := r.NICs.GetNIC(ctx, nicID)
		if azure.Classify(err) == azure.KindNotFound {
			return ctrl.Result{}, nil
		}
		if err != nil {
			return r.releaseFailure(pool, o, err)
		}
		var p plan
		for _, c := range nicConfigs(nic) {
			if c.owned() {
				p.Remove = append(p.Remove, c.Name)
			}
		}
		if p.empty() {
			return ctrl.Result{}, nil
		}
		nic.Properties.IPConfigurations = applyPlan(nic, p, "")
		_, err = r.NICs.UpdateNIC(ctx, nic)
		switch kind := azure.Classify(err); {
		case err == nil || kind == azure.KindNotFound:
			return ctrl.Result{}, nil
		case kind == azure.KindPreconditionFailed && attempt < maxWriteAttempts:
			continue
		default:
			return r.releaseFailure(pool, o, fmt.Errorf("release ips of pool %s from nic %s: %w", pool.Name, nicID, err))
		}
	}
}

// releaseFailure records an Event for a failed release and picks the retry.
func (r *PoolReconciler) releaseFailure(pool *nicpoolv1.NodeIPPool, o *outcome, err error) (ctrl.Result, error) {
	res, rerr := r.armFailure(pool, o, err, true)
	r.emitEvents(pool, limitReason(pool), o)
	if rerr == nil && res.IsZero() {
		res.RequeueAfter = r.PendingRetry
	}
	return res, rerr
}
