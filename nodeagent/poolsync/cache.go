// Package poolsync connects the allocator to the API server: it watches the
// node's own NodeIPPool and the pods bound to the node, feeds the pool to
// the allocator and writes the spec the allocator plans.
package poolsync

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// RBAC of the agent (config/rbac/agent, role nicpool-agent).
// +kubebuilder:rbac:groups=network.nicpool.io,resources=nodeippools,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// NewCache returns a cache that holds only the NodeIPPool named nodeName and
// the pods whose spec.nodeName is nodeName (both through field-selected
// watches), and refuses reads of anything else instead of starting a
// cluster-wide informer. ctx bounds only the informers' registration; the
// cache's Start runs them.
func NewCache(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, nodeName string) (cache.Cache, error) {
	c, err := cache.New(cfg, cache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]cache.ByObject{
			&nicpoolv1.NodeIPPool{}: {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
			&corev1.Pod{}: {
				Field:     fields.OneTermEqualSelector("spec.nodeName", nodeName),
				Transform: cache.TransformStripManagedFields(),
			},
		},
		ReaderFailOnMissingInformer: true,
	})
	if err != nil {
		return nil, fmt.Errorf("build cache for node %s: %w", nodeName, err)
	}
	// Register both informers now so reads never fail for a missing one.
	for _, obj := range []client.Object{&nicpoolv1.NodeIPPool{}, &corev1.Pod{}} {
		if _, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("register informer for %T: %w", obj, err)
		}
	}
	return c, nil
}

// PodsOnNode lists the pods the cache holds (those on the node) as
// "namespace/name" keys.
func PodsOnNode(ctx context.Context, r client.Reader) (map[string]bool, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("list pods on the node: %w", err)
	}
	out := make(map[string]bool, len(pods.Items))
	for _, p := range pods.Items {
		out[p.Namespace+"/"+p.Name] = true
	}
	return out, nil
}

// PodsNeedingIPs counts the pods the cache holds (those bound to the node)
// that need a pod IP: not host-network, not finished, not being deleted
// (a deleting pod's IP, if it has one, is counted by its allocation).
func PodsNeedingIPs(ctx context.Context, r client.Reader) (int, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods); err != nil {
		return 0, fmt.Errorf("list pods on the node: %w", err)
	}
	n := 0
	for _, p := range pods.Items {
		finished := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		if !p.Spec.HostNetwork && !finished && p.DeletionTimestamp.IsZero() {
			n++
		}
	}
	return n, nil
}
