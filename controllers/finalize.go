package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// mustDrain reports whether a deleted pool has to stay: it serves its NIC,
// lists IPs in status (the agent may have handed them out) and its Node
// still exists, so pods may be using them. Such a pool is kept, adding
// nothing and letting go only of what the agent releases, until the Node is
// gone or status.ips is empty (a Node deletion retriggers the pass).
func (r *PoolReconciler) mustDrain(ctx context.Context, pool *nicpoolv1.NodeIPPool) (bool, error) {
	if !controllerutil.ContainsFinalizer(pool, nicpoolv1.FinalizerName) || len(pool.Status.IPs) == 0 ||
		!r.claims.owns(pool.Name, pool.Status.NICID) {
		return false, nil
	}
	err := r.Get(ctx, types.NamespacedName{Name: pool.Name}, &corev1.Node{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get node %s of deleted pool: %w", pool.Name, err)
	}
	return true, nil
}

// finalize removes every nicpool IP configuration from the pool's NIC (a
// missing NIC counts as done), returns the pool's quota and lets the pool go.
// It runs once no pod can hold an IP of the pool: its Node is gone, or the
// pool lists no IP the agent could have handed out. Only the NIC the pool
// serves is touched: the NIC of a pool refused as a second claimant is
// another pool's, and a pool that never recorded status.nicID never wrote to
// any NIC.
func (r *PoolReconciler) finalize(ctx context.Context, pool *nicpoolv1.NodeIPPool) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(pool, nicpoolv1.FinalizerName) {
		return ctrl.Result{}, nil
	}
	if nicID := pool.Status.NICID; r.claims.owns(pool.Name, nicID) {
		if res, err := r.releaseAll(ctx, pool, nicID); err != nil || !res.IsZero() {
			return res, err
		}
		if err := r.deleteAllCreatedPublicIPs(ctx, pool); err != nil {
			return ctrl.Result{}, err
		}
	}
	r.Ledger.Forget(pool.Name)
	r.claims.release(pool.Name)
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
	// The NIC changes here, outside a pass: a pool that serves it next reads it.
	r.known.forget(nicID)
	o := &outcome{}
	for attempt := 1; ; attempt++ {
		nic, err := r.NICs.GetNIC(ctx, nicID)
		if azure.Classify(err) == azure.KindNotFound {
			return ctrl.Result{}, nil
		}
		if err != nil {
			return r.releaseFailure(pool, o, err)
		}
		var p nicsync.Plan
		for _, c := range nicsync.Configs(nic) {
			if c.Owned() {
				p.Remove = append(p.Remove, c.Name)
			}
		}
		if p.Empty() {
			return ctrl.Result{}, nil
		}
		nic.Properties.IPConfigurations = nicsync.Apply(nic, p, "")
		_, err = r.NICs.UpdateNIC(ctx, nic)
		switch kind := azure.Classify(err); {
		case err == nil:
			// The addresses go back to the subnet: pools waiting on a full
			// subnet may take them on their next pass, not four retry
			// intervals later.
			r.subnets.wrote(pool.Status.SubnetID, 0, len(p.Remove))
			return ctrl.Result{}, nil
		case kind == azure.KindNotFound:
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
