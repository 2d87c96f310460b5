// Package podattach is the node agent's half of pod attachments: it reads the
// network.nicpool.io attachment annotations of the pods holding the node's
// IPs and keeps the pool's spec.attachments in step with them, and it holds
// an IP back from other pods until the operator reports its detach done.
package podattach

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// RBAC of the agent (config/rbac/agent, role nicpool-agent): Events on pods
// whose attachment annotations are wrong.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Allocator is the part of the allocator the attacher uses (ipam.Allocator).
// All methods are safe for concurrent use.
type Allocator interface {
	// Records lists the allocations.
	Records() []store.Record
	// MarkAttachment blocks ip until UnmarkAttachment if key still holds it.
	MarkAttachment(ip string, key agentapi.AttachmentKey) bool
	// UnmarkAttachment lifts MarkAttachment's block.
	UnmarkAttachment(ip string)
	// AttachmentMarks lists the marked IPs.
	AttachmentMarks() []string
}

// EventRecorder records Events (k8s.io/client-go/tools/events).
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...interface{})
}

// Defaults of Config.
const (
	DefaultDebounce       = 50 * time.Millisecond
	DefaultResync         = 10 * time.Second
	DefaultRequestTimeout = 15 * time.Second
)

// Config configures an Attacher.
type Config struct {
	// NodeName is the node and the name of its NodeIPPool.
	NodeName string
	// Cache holds the node's pool and its pods (poolsync.NewCache).
	Cache cache.Cache
	// Client writes the pool's spec (a direct client).
	Client client.Client
	// Allocator is the node's allocator.
	Allocator Allocator
	// Recorder records Events on pods; nil records none.
	Recorder EventRecorder
	// Debounce gathers bursts of changes into one write.
	Debounce time.Duration
	// Resync syncs periodically, whatever happens.
	Resync time.Duration
	// RequestTimeout bounds each write.
	RequestTimeout time.Duration
	// Log receives progress.
	Log logr.Logger
}

// Attacher keeps spec.attachments in step with the node's pods.
type Attacher struct {
	cfg     Config
	trigger chan struct{}
	// warned remembers the annotation problems already reported, by pod UID
	// and problem, so a pod gets one Event per problem.
	warned map[string]bool
}

// New returns an Attacher.
func New(cfg Config) *Attacher {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	return &Attacher{cfg: cfg, trigger: make(chan struct{}, 1), warned: map[string]bool{}}
}

// Kick asks for a sync soon (after a CNI ADD gave a pod an IP). It never
// blocks.
func (a *Attacher) Kick() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// Run syncs on every change of the pool or of a pod's annotations or
// existence, on Kick, and every Resync, until ctx ends.
func (a *Attacher) Run(ctx context.Context) error {
	for _, obj := range []client.Object{&nicpoolv1.NodeIPPool{}, &corev1.Pod{}} {
		inf, err := a.cfg.Cache.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("get %T informer: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { a.Kick() },
			UpdateFunc: func(old, cur any) { a.kickOnChange(old, cur) },
			DeleteFunc: func(any) { a.Kick() },
		})
		if err != nil {
			return fmt.Errorf("watch %T: %w", obj, err)
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
	}
	if !a.cfg.Cache.WaitForCacheSync(ctx) {
		return nil
	}
	ticker := time.NewTicker(a.cfg.Resync)
	defer ticker.Stop()
	a.Kick()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.trigger:
		case <-ticker.C:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.cfg.Debounce):
		}
		if err := a.SyncOnce(ctx); err != nil {
			a.cfg.Log.Error(err, "Failed to sync the pool's attachments", "node", a.cfg.NodeName)
			a.Kick()
		}
	}
}

// kickOnChange kicks for a pool update, and for a pod update that changed
// its attachment annotations or its UID.
func (a *Attacher) kickOnChange(old, cur any) {
	op, ok1 := old.(*corev1.Pod)
	cp, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 {
		a.Kick()
		return
	}
	for _, k := range []string{nicpoolv1.AnnotationApplicationSecurityGroups, nicpoolv1.AnnotationLoadBalancerBackendPools, nicpoolv1.AnnotationPublicIP} {
		if op.Annotations[k] != cp.Annotations[k] {
			a.Kick()
			return
		}
	}
	if op.UID != cp.UID || (op.DeletionTimestamp == nil) != (cp.DeletionTimestamp == nil) {
		a.Kick()
	}
}

// SyncOnce computes spec.attachments from the pods holding the node's IPs,
// patches the pool when it differs (resourceVersion as precondition; a
// conflict is retried on the next event), and lifts the block of IPs whose
// detach the operator reported done.
func (a *Attacher) SyncOnce(ctx context.Context) error {
	var np nicpoolv1.NodeIPPool
	err := a.cfg.Cache.Get(ctx, client.ObjectKey{Name: a.cfg.NodeName}, &np)
	if apierrors.IsNotFound(err) || (err == nil && !np.DeletionTimestamp.IsZero()) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read NodeIPPool %s from the cache: %w", a.cfg.NodeName, err)
	}
	wanted := a.wanted(ctx)
	next := nextEntries(&np, wanted)
	effective := np.Spec.Attachments
	if !sameEntries(np.Spec.Attachments, next) {
		base := np.DeepCopy()
		np.Spec.Attachments = next
		pctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
		defer cancel()
		err := a.cfg.Client.Patch(pctx, &np, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
		switch {
		case apierrors.IsConflict(err):
			a.Kick()
		case err != nil:
			return fmt.Errorf("patch spec.attachments of NodeIPPool %s (%d entries): %w", a.cfg.NodeName, len(next), err)
		default:
			effective = next
			a.cfg.Log.V(1).Info("Updated the pool's attachments", "node", a.cfg.NodeName, "entries", len(next))
		}
	}
	a.unmark(&np, effective, wanted)
	return nil
}

// unmark lifts the block of marked IPs that no pod wants attachments for,
// that have no entry in the spec in effect and that carry nothing.
func (a *Attacher) unmark(np *nicpoolv1.NodeIPPool, effective []nicpoolv1.IPAttachment, wanted map[string]nicpoolv1.IPAttachment) {
	keep := map[string]bool{}
	for _, e := range effective {
		keep[string(e.IP)] = true
	}
	for _, st := range np.Status.Attachments {
		if st.Attached() {
			keep[string(st.IP)] = true
		}
	}
	for _, ip := range a.cfg.Allocator.AttachmentMarks() {
		if _, w := wanted[ip]; !w && !keep[ip] {
			a.cfg.Allocator.UnmarkAttachment(ip)
		}
	}
}
