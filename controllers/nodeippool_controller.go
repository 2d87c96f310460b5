package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// NICAPI is the part of the ARM client the pool reconciler uses. Every
// method is safe for concurrent use; UpdateNIC sends If-Match with nic.Etag.
type NICAPI interface {
	GetNIC(ctx context.Context, nicID string) (*armnetwork.Interface, error)
	UpdateNIC(ctx context.Context, nic *armnetwork.Interface) (*armnetwork.Interface, error)
	FindNICForVM(ctx context.Context, vmID string) (string, error)
	GetSubnet(ctx context.Context, subnetID string) (*armnetwork.Subnet, error)
	GetVNet(ctx context.Context, vnetID string) (*armnetwork.VirtualNetwork, error)
}

// PoolReconciler reconciles NodeIPPools against their NICs' secondary IP
// configurations.
type PoolReconciler struct {
	client.Client
	// NICs reaches ARM.
	NICs NICAPI
	// Ledger hands out the per-VNet quota.
	Ledger *Ledger
	// claims records which pool serves each NIC; setup shares it with the
	// ledger rebuild.
	claims *nicClaims
	// Recorder records Events on pools; nil records none.
	Recorder events.EventRecorder
	// PerVMLimit caps the nicpool IPs of one NIC.
	PerVMLimit int
	// Workers bounds the reconciles running at once.
	Workers int
	// LimitRetry is how often a pool held back by the VNet quota or a full
	// subnet tries again.
	LimitRetry time.Duration
	// PendingRetry is how often a NIC with a write still running is polled.
	PendingRetry time.Duration
	// ThrottleRetry is the wait after a 429 without Retry-After.
	ThrottleRetry time.Duration
	// Scope limits the NICs this operator writes to.
	Scope Scope
	// PublicIPs creates and deletes the public IPs pods ask the operator to
	// create; nil refuses such requests.
	PublicIPs PublicIPAPI
	// Services, when set, says which Service backend pools the pool's IPs
	// belong in (Services of type LoadBalancer, docs/services.md); nil: none.
	Services *serviceBackends

	// newName names new IP configurations (tests may replace it).
	newName func() string
	// afterNICWrite, when set, runs after each successful NIC write; an
	// error ends the pass before the status write (tests: a crash).
	afterNICWrite func(pool string) error
	// subnets remembers how many addresses full subnets have left.
	subnets subnetRoom
	// refusals remembers refused attachment requests until their retry.
	refusals refusals
	// known remembers each NIC's last settled state, so a pass need not read
	// it again; knownTTL (default defaultKnownNICTTL) bounds its age.
	known    knownNICs
	knownTTL time.Duration
	// subnetResync is how often the pools' subnets are checked for changed
	// service endpoints (0: defaultSubnetResync, negative: never).
	subnetResync time.Duration
}

// PublicIPAPI creates and deletes the public IPs the operator makes for pods
// (attachments asking for "create"). Both are idempotent and safe for
// concurrent use.
type PublicIPAPI interface {
	// CreatePublicIP makes sure a Standard, static IPv4 public IP with the ID
	// exists in location.
	CreatePublicIP(ctx context.Context, id, location string) error
	// DeletePublicIP deletes the public IP; one already gone is no error.
	DeletePublicIP(ctx context.Context, id string) error
}

// maxWriteAttempts bounds the re-read and recompute loop on 412.
const maxWriteAttempts = 3

// errCrash is returned by afterNICWrite hooks to abandon a pass.
var errCrash = errors.New("pass abandoned after nic write")

// +kubebuilder:rbac:groups=network.nicpool.io,resources=nodeippools,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=network.nicpool.io,resources=nodeippools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=network.nicpool.io,resources=nodeippools/finalizers,verbs=update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one pool's NIC to the granted number of IPs, in one NIC
// write, and records the result in the pool's status.
func (r *PoolReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	start := time.Now()
	defer func() { reconcileLatency.WithLabelValues(resultLabel(res, err)).Observe(time.Since(start).Seconds()) }()
	pool := &nicpoolv1.NodeIPPool{}
	if err := r.Get(ctx, req.NamespacedName, pool); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone without our finalizer pass (someone removed it): its
			// quota can no longer be accounted for by its status.
			r.Ledger.Forget(req.Name)
			r.claims.release(req.Name)
			r.refusals.forget(req.Name)
			poolConditions.update(req.Name, nil)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// No grant before the ledger knows every pool's standing.
	select {
	case <-r.Ledger.Ready():
	case <-ctx.Done():
		return ctrl.Result{}, fmt.Errorf("wait for the vnet ledger rebuild: %w", ctx.Err())
	}
	draining := false
	if !pool.DeletionTimestamp.IsZero() {
		if draining, err = r.mustDrain(ctx, pool); err != nil {
			return ctrl.Result{}, err
		}
		if !draining {
			return r.finalize(ctx, pool)
		}
	}
	base := pool.DeepCopy()
	prevLimit, prevReady := limitReason(pool), readyReason(pool)
	o := &outcome{}
	res, err = r.pass(ctx, pool, o, draining)
	if errors.Is(err, errCrash) {
		return ctrl.Result{}, nil
	}
	drained := draining && err == nil && o.readyReason == "" && len(pool.Status.IPs) == 0
	if draining && !drained && o.readyReason == "" {
		o.readyReason, o.readyMsg = nicpoolv1.ReasonDeletionPending, fmt.Sprintf(
			"the pool was deleted while Node %s exists: its %d IPs stay on the NIC for the node's pods and none is added; "+
				"it goes once the Node is deleted or the agent has released every IP", pool.Name, len(pool.Status.IPs))
	}
	setConditions(pool, o)
	setAttachmentsCondition(pool)
	share := r.setFairShare(pool, draining)
	pool.Status.ObservedGeneration = pool.Generation
	r.emitEvents(pool, prevLimit, o)
	r.emitReadyEvent(pool, prevReady, o)
	r.emitAttachmentEvents(ctx, pool, base.Status.Attachments, o.attach)
	if !equality.Semantic.DeepEqual(base.Status, pool.Status) {
		// The pass's own writes (finalizer, identity, public IPs to create)
		// moved the resourceVersion; the lock is against others' writes.
		base.ResourceVersion = pool.ResourceVersion
		if perr := r.Status().Patch(ctx, pool, statusPatch(base)); perr != nil {
			return ctrl.Result{}, errors.Join(fmt.Errorf("patch status of pool %s: %w", pool.Name, perr), err)
		}
	}
	if drained {
		return r.finalize(ctx, pool)
	}
	if !draining {
		r.Ledger.Published(pool.Name, share)
	}
	poolConditions.update(pool.Name, &pool.Status)
	ctrl.LoggerFrom(ctx).V(1).Info("Reconciled NodeIPPool", "allocated", pool.Status.AllocatedIPCount,
		"requested", pool.Spec.RequestedIPCount, "notReady", o.readyReason, "limit", o.limitReason,
		"requeueAfter", res.RequeueAfter, "took", time.Since(start))
	return res, err
}

// setFairShare shows the pool's fair share of the VNet quota in its status
// while that share binds it (see fairShares), and returns what it set
// (noShare: none). A draining or unserved pool shows none.
func (r *PoolReconciler) setFairShare(pool *nicpoolv1.NodeIPPool, draining bool) int {
	pool.Status.FairShareIPCount = nil
	if draining || pool.Status.VNetID == "" {
		return noShare
	}
	share, binding := r.Ledger.FairShare(pool.Name)
	if !binding {
		return noShare
	}
	v := int32(share)
	pool.Status.FairShareIPCount = &v
	return share
}

// pass resolves the NIC, claims it for the pool, makes sure the finalizer
// guards it, and syncs it. A draining pool (deleted while its Node lives)
// stays on the NIC it has and asks for nothing more: only the IPs the agent
// released leave the NIC.
func (r *PoolReconciler) pass(ctx context.Context, pool *nicpoolv1.NodeIPPool, o *outcome, draining bool) (ctrl.Result, error) {
	nicID := pool.Status.NICID
	if !draining {
		var res ctrl.Result
		var err error
		if nicID, res, err = r.chooseNIC(ctx, pool, o); nicID == "" || err != nil || !res.IsZero() {
			return res, err
		}
		if owner, ok := r.claims.claim(nicID, pool.Name); !ok {
			return r.refuse(pool, nicID, owner, o), nil
		}
		if err := r.ensureFinalizer(ctx, pool); err != nil {
			return ctrl.Result{}, err
		}
	}
	nic, err := r.readNIC(ctx, nicID, pool)
	if err != nil {
		return r.armFailure(pool, o, err, false)
	}
	if err := r.recordIdentity(ctx, pool, nic); err != nil {
		r.known.forget(nicID)
		return r.armFailure(pool, o, err, false)
	}
	if !draining {
		return r.syncNIC(ctx, pool, nic, o)
	}
	requested := pool.Spec.RequestedIPCount
	pool.Spec.RequestedIPCount = 0
	defer func() { pool.Spec.RequestedIPCount = requested }()
	return r.syncNIC(ctx, pool, nic, o)
}

// readNIC returns the NIC as the last pass left it, if that is recent
// enough and the pool asks for no ASGs it lacks, else reads it from ARM
// (which also finishes a write still pending).
func (r *PoolReconciler) readNIC(ctx context.Context, nicID string, pool *nicpoolv1.NodeIPPool) (*armnetwork.Interface, error) {
	if nic := r.known.get(nicID, time.Now(), cmp.Or(r.knownTTL, defaultKnownNICTTL)); nic != nil && !asgRequestsDiffer(pool, nic) {
		return nic, nil
	}
	return r.NICs.GetNIC(ctx, nicID)
}

// SetupWithManager registers the reconciler: pools, and the Node of the same
// name (its providerID names the VM).
func (r *PoolReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.newName == nil {
		r.newName = nicsync.NewConfigName
	}
	// Pools held back by the VNet quota are woken when quota frees up, and
	// pools refused a NIC when it becomes free; a full channel drops
	// wake-ups, which LimitRetry then covers.
	woken := make(chan event.GenericEvent, 1024)
	wake := func(pools []string) {
		for _, name := range pools {
			select {
			case woken <- event.GenericEvent{Object: &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}}:
			default:
			}
		}
	}
	if r.claims == nil {
		r.claims = newNICClaims()
	}
	r.Ledger.wake, r.claims.wake = wake, wake
	if r.subnetResync >= 0 {
		if err := mgr.Add(&subnetFollower{r: r, period: cmp.Or(r.subnetResync, defaultSubnetResync), wake: wake}); err != nil {
			return fmt.Errorf("add subnet follower: %w", err)
		}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("nodeippool").
		For(&nicpoolv1.NodeIPPool{}, builder.WithPredicates(observeDemand(r.Ledger, r.PerVMLimit), predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{},
			predicate.AnnotationChangedPredicate{}, deletionPredicate{}))).
		Watches(&corev1.Node{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(nodeEvents{})).
		WatchesRawSource(source.Channel(woken, &handler.EnqueueRequestForObject{}))
	if r.Services != nil {
		// Endpoints of nicpool's Services move memberships on the nodes
		// that hold them: their pools are woken.
		b = b.Watches(&discoveryv1.EndpointSlice{}, slicePools(mgr.GetCache())).
			Watches(&corev1.Service{}, servicePools(mgr.GetCache()))
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Complete(r)
}

// resultLabel names a reconcile result for the latency histogram.
func resultLabel(res ctrl.Result, err error) string {
	switch {
	case err != nil:
		return "error"
	case res.RequeueAfter > 0:
		return "requeue"
	default:
		return "success"
	}
}

// statusPatch is the merge patch of a pass's status write. While attachments
// are in play it carries the resourceVersion read: a merge patch sends only
// what differs from that read, so from a stale cache (a pass right after the
// previous one's write) it could leave the previous status.attachments in
// place under a newer attachmentsObservedGeneration, and the agent would
// hand out an IP still carrying them. A conflict retries the pass.
func statusPatch(base *nicpoolv1.NodeIPPool) client.Patch {
	if len(base.Spec.Attachments) > 0 || len(base.Status.Attachments) > 0 || base.Status.AttachmentsObservedGeneration > 0 {
		return client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	}
	return client.MergeFrom(base)
}
