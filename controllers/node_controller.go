package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// NodeReconciler keeps one NodeIPPool per Node, with the Node's name and an
// owner reference to it, so that deleting the Node deletes the pool (and the
// pool's finalizer releases its IPs). It never talks to ARM: whether the Node
// can be served is the pool reconciler's call, recorded in the pool's status.
type NodeReconciler struct {
	client.Client
	// Workers bounds the reconciles running at once.
	Workers int
}

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=network.nicpool.io,resources=nodeippools,verbs=get;list;watch;create;update;patch;delete

// Reconcile creates the Node's pool if it is missing, and owns it.
func (r *NodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	node := &corev1.Node{}
	if err := r.Get(ctx, req.NamespacedName, node); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !node.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	owner := metav1.OwnerReference{
		APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
	}
	pool := &nicpoolv1.NodeIPPool{}
	err := r.Get(ctx, req.NamespacedName, pool)
	switch {
	case apierrors.IsNotFound(err):
		pool = &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: node.Name, OwnerReferences: []metav1.OwnerReference{owner}}}
		if err := r.Create(ctx, pool); err != nil && !apierrors.IsAlreadyExists(err) {
			return ctrl.Result{}, fmt.Errorf("create pool for node %s: %w", node.Name, err)
		}
		log := ctrl.LoggerFrom(ctx)
		log.Info("Created NodeIPPool", "node", node.Name)
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("get pool of node %s: %w", node.Name, err)
	}
	if !pool.DeletionTimestamp.IsZero() || ownedBy(pool, node.UID) {
		return ctrl.Result{}, nil
	}
	// A pool that predates its Node (or a recreated Node with a new UID):
	// point the owner reference at this Node.
	patch := client.MergeFrom(pool.DeepCopy())
	refs := []metav1.OwnerReference{owner}
	for _, ref := range pool.OwnerReferences {
		if ref.Kind != "Node" || ref.APIVersion != "v1" {
			refs = append(refs, ref)
		}
	}
	pool.OwnerReferences = refs
	if err := r.Patch(ctx, pool, patch); err != nil {
		return ctrl.Result{}, fmt.Errorf("set owner of pool %s: %w", pool.Name, err)
	}
	return ctrl.Result{}, nil
}

// ownedBy reports whether the pool's owner references name the Node.
func ownedBy(pool *nicpoolv1.NodeIPPool, uid types.UID) bool {
	for _, ref := range pool.OwnerReferences {
		if ref.Kind == "Node" && ref.UID == uid {
			return true
		}
	}
	return false
}

// SetupWithManager registers the reconciler for Nodes and the pools they own
// (so a deleted pool is recreated while its Node lives).
func (r *NodeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("node").
		For(&corev1.Node{}, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(event.UpdateEvent) bool { return false },
		})).
		Watches(&nicpoolv1.NodeIPPool{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
			UpdateFunc: func(event.UpdateEvent) bool { return false },
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Complete(r)
}
