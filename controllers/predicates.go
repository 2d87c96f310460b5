package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// observeDemand passes every pool event through and tells the ledger the
// pool's request, so fair shares count pools whose reconcile is still queued.
func observeDemand(l *Ledger, perVM int) predicate.Predicate {
	observe := func(o client.Object) bool {
		if pool, ok := o.(*nicpoolv1.NodeIPPool); ok {
			want := min(int(pool.Spec.RequestedIPCount), perVM)
			if !pool.DeletionTimestamp.IsZero() {
				want = 0 // a deleted pool is given nothing more.
			}
			l.Observe(pool.Name, pool.Status.VNetID, len(pool.Status.IPs), want, publishedShare(pool))
		}
		return true
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return observe(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return observe(e.ObjectNew) },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(e event.GenericEvent) bool { return observe(e.Object) },
	}
}

// deletionPredicate passes updates that mark a pool for deletion.
type deletionPredicate struct{ predicate.Funcs }

// Update passes an update that sets the deletion timestamp.
func (deletionPredicate) Update(e event.UpdateEvent) bool {
	return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// nodeEvents passes Node creations, providerID changes and deletions only:
// the pool reconciler needs nothing else from a Node.
type nodeEvents struct{ predicate.Funcs }

// Update passes an update that changes spec.providerID.
func (nodeEvents) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Node)
	n, ok2 := e.ObjectNew.(*corev1.Node)
	return ok1 && ok2 && o.Spec.ProviderID != n.Spec.ProviderID
}

// Delete passes Node deletions: a pool deleted while its Node lived waits
// for that Node to go before it releases the IPs its pods held.
func (nodeEvents) Delete(event.DeleteEvent) bool { return true }
