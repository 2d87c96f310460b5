package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/nicpool/nicpool/internal/azure"
)

// LoadBalancerAPI is what the Service controller needs from ARM: load
// balancers, public IPs and the VNet's location. Calls are safe for
// concurrent use.
type LoadBalancerAPI interface {
	GetLoadBalancer(ctx context.Context, id string) (*armnetwork.LoadBalancer, error)
	// PutLoadBalancer writes lb with If-Match on its etag (If-None-Match *
	// without one).
	PutLoadBalancer(ctx context.Context, lb *armnetwork.LoadBalancer) (*armnetwork.LoadBalancer, error)
	DeleteLoadBalancer(ctx context.Context, id string) error
	GetPublicIPAddress(ctx context.Context, id string) (*armnetwork.PublicIPAddress, error)
	PublicIPAPI
	GetVNet(ctx context.Context, vnetID string) (*armnetwork.VirtualNetwork, error)
}

// ServiceReconciler serves Services of type LoadBalancer with nicpool's
// loadBalancerClass through Azure load balancers whose backend pools hold the
// pods' own IP configurations (docs/services.md). It writes the load
// balancers; the NodeIPPool reconciler writes the memberships, in its one
// NIC write per pass.
type ServiceReconciler struct {
	client.Client
	LBs      LoadBalancerAPI
	Recorder events.EventRecorder
	names    *serviceLBs
	// memberWait is how often a Service being torn down checks that its
	// backend pool has emptied.
	memberWait time.Duration

	locOnce  sync.Mutex
	location string
}

// Its RBAC markers are in package servicerbac: their own ClusterRole, granted
// only where the controller is turned on.

// Reconcile brings a Service's load balancer elements to what it asks, or
// removes them when it is deleted or no longer nicpool's.
func (r *ServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	svc := &corev1.Service{}
	if err := r.Get(ctx, req.NamespacedName, svc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !svc.DeletionTimestamp.IsZero() || !servedByNicpool(svc) {
		if !controllerutil.ContainsFinalizer(svc, ServiceFinalizer) {
			return ctrl.Result{}, nil
		}
		return r.teardown(ctx, svc)
	}
	if controllerutil.AddFinalizer(svc, ServiceFinalizer) {
		if err := r.Update(ctx, svc); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer to service %s: %w", req, err)
		}
	}
	var slices discoveryv1.EndpointSliceList
	if err := r.List(ctx, &slices, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list endpointslices of service %s: %w", req, err)
	}
	d, problems, err := r.names.desired(svc, slices.Items)
	for _, p := range problems {
		r.warn(svc, "PortNotServed", p)
	}
	if errors.Is(err, errNotServable) {
		r.warn(svc, "InvalidService", err.Error())
		return ctrl.Result{}, nil
	}
	// The Service's elements on the other load balancer (it switched
	// between internal and public) go once their pool has emptied.
	other := r.names.lbID(!isInternal(svc))
	otherDone, err := r.release(ctx, svc, other)
	if err != nil {
		return ctrl.Result{}, r.failed(svc, err)
	}
	ip, err := r.ensure(ctx, svc, d)
	if err != nil {
		return ctrl.Result{}, r.failed(svc, err)
	}
	if otherDone && d.frontend.publicIPID == "" {
		if err := r.deleteCreatedPIP(ctx, svc); err != nil {
			return ctrl.Result{}, r.failed(svc, err)
		}
	}
	if err := r.publish(ctx, svc, d.poolID(), ip); err != nil {
		return ctrl.Result{}, err
	}
	if !otherDone {
		return ctrl.Result{RequeueAfter: r.memberWait}, nil
	}
	// Nothing watches the load balancers: a served Service is checked
	// again now and then, so elements removed behind the operator's back
	// come back.
	return ctrl.Result{RequeueAfter: serviceResync}, nil
}

// serviceResync is how often a served Service's load balancer elements are
// checked without an event.
const serviceResync = 5 * time.Minute

// ensure creates the Service's public IP if it needs one, writes its
// elements on the load balancer when they differ, and returns the
// frontend's address.
func (r *ServiceReconciler) ensure(ctx context.Context, svc *corev1.Service, d svcLB) (string, error) {
	loc, err := r.lbLocation(ctx)
	if err != nil {
		return "", err
	}
	if id := d.frontend.publicIPID; id != "" && strings.EqualFold(lastSegment(id), strings.ToLower(createdPIPName(svc))) {
		if err := r.LBs.CreatePublicIP(ctx, id, loc); err != nil {
			return "", fmt.Errorf("create public ip for service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
	}
	lb, err := r.LBs.GetLoadBalancer(ctx, d.lbID)
	switch {
	case azure.Classify(err) == azure.KindNotFound:
		lb = &armnetwork.LoadBalancer{ID: to.Ptr(d.lbID), Location: to.Ptr(loc),
			SKU: &armnetwork.LoadBalancerSKU{Name: to.Ptr(armnetwork.LoadBalancerSKUNameStandard)}}
	case err != nil:
		return "", err
	}
	if !equality.Semantic.DeepEqual(serviceSignature(lb, d.key), desiredSignature(d)) {
		applyService(lb, d)
		if lb, err = r.LBs.PutLoadBalancer(ctx, lb); err != nil {
			return "", fmt.Errorf("write load balancer elements of service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		ctrl.LoggerFrom(ctx).Info("Wrote the Service's load balancer elements", "loadBalancer", d.lbID, "rules", len(d.rules))
	}
	private, pipID := frontendAddress(lb, d.key)
	if pipID == "" {
		return private, nil
	}
	pip, err := r.LBs.GetPublicIPAddress(ctx, pipID)
	if err != nil {
		return "", err
	}
	if pip.Properties == nil || deref(pip.Properties.IPAddress) == "" {
		return "", fmt.Errorf("public ip %s has no address yet", pipID)
	}
	return *pip.Properties.IPAddress, nil
}

// publish records the backend pool on the Service (pool passes then put the
// ready endpoints' IPs in it) and its frontend address in
// status.loadBalancer.ingress.
func (r *ServiceReconciler) publish(ctx context.Context, svc *corev1.Service, pool, ip string) error {
	if svc.Annotations[AnnotationServiceBackendPool] != pool {
		base := svc.DeepCopy()
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		svc.Annotations[AnnotationServiceBackendPool] = pool
		if err := r.Patch(ctx, svc, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("record backend pool on service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
	}
	ingress := []corev1.LoadBalancerIngress{{IP: ip}}
	if equality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, ingress) {
		return nil
	}
	base := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = ingress
	if err := r.Status().Patch(ctx, svc, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("record frontend address of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Published the Service's frontend address", "ip", ip)
	return nil
}

// teardown removes a deleted (or no longer nicpool's) Service from both load
// balancers, waiting for its backend pool to empty (pool passes drop the
// memberships as soon as the Service is deleted), deletes the public IP
// nicpool created for it and lets it go.
func (r *ServiceReconciler) teardown(ctx context.Context, svc *corev1.Service) (ctrl.Result, error) {
	done := true
	for _, internal := range []bool{false, true} {
		ok, err := r.release(ctx, svc, r.names.lbID(internal))
		if err != nil {
			return ctrl.Result{}, r.failed(svc, err)
		}
		done = done && ok
	}
	if !done {
		return ctrl.Result{RequeueAfter: r.memberWait}, nil
	}
	if err := r.deleteCreatedPIP(ctx, svc); err != nil {
		return ctrl.Result{}, r.failed(svc, err)
	}
	base := svc.DeepCopy()
	delete(svc.Annotations, AnnotationServiceBackendPool)
	controllerutil.RemoveFinalizer(svc, ServiceFinalizer)
	if err := r.Patch(ctx, svc, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if svc.DeletionTimestamp.IsZero() && len(svc.Status.LoadBalancer.Ingress) > 0 {
		base := svc.DeepCopy()
		svc.Status.LoadBalancer.Ingress = nil
		if err := r.Status().Patch(ctx, svc, client.MergeFrom(base)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	ctrl.LoggerFrom(ctx).Info("Removed the Service's load balancer elements")
	return ctrl.Result{}, nil
}

// release removes the Service's elements from the load balancer lbID. Its
// rules and probes go at once (no new flows); its pool, and its frontend
// when it is the last, only once no IP configuration is in the pool any
// more. It returns whether nothing of the Service is left on it. A load
// balancer left without frontends is deleted.
func (r *ServiceReconciler) release(ctx context.Context, svc *corev1.Service, lbID string) (bool, error) {
	key := serviceKey(svc)
	lb, err := r.LBs.GetLoadBalancer(ctx, lbID)
	if azure.Classify(err) == azure.KindNotFound {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	members := poolMembers(lb, key)
	if !removeService(lb, key, len(members) > 0) {
		return len(serviceSignature(lb, key)) == 0, nil
	}
	if !hasFrontends(lb) {
		if err := r.LBs.DeleteLoadBalancer(ctx, lbID); err != nil {
			return false, fmt.Errorf("delete load balancer %s left without frontends: %w", lbID, err)
		}
		ctrl.LoggerFrom(ctx).Info("Deleted the load balancer its last Service left", "loadBalancer", lbID)
		return true, nil
	}
	if lb, err = r.LBs.PutLoadBalancer(ctx, lb); err != nil {
		return false, fmt.Errorf("remove elements of service %s/%s from load balancer %s: %w", svc.Namespace, svc.Name, lbID, err)
	}
	if len(members) > 0 {
		ctrl.LoggerFrom(ctx).Info("Removed the Service's rules; waiting for its backend pool to empty", "loadBalancer", lbID, "members", len(members))
	}
	return len(serviceSignature(lb, key)) == 0, nil
}

// deleteCreatedPIP deletes the public IP nicpool created for svc, if any.
func (r *ServiceReconciler) deleteCreatedPIP(ctx context.Context, svc *corev1.Service) error {
	id := r.names.publicIPID(createdPIPName(svc))
	if err := r.LBs.DeletePublicIP(ctx, id); err != nil {
		return fmt.Errorf("delete public ip %s of service %s/%s: %w", id, svc.Namespace, svc.Name, err)
	}
	return nil
}

// lbLocation is the region load balancers are created in: the flag's, or
// the VNet's (read once).
func (r *ServiceReconciler) lbLocation(ctx context.Context) (string, error) {
	r.locOnce.Lock()
	defer r.locOnce.Unlock()
	if r.location != "" {
		return r.location, nil
	}
	if r.names.opts.Location != "" {
		r.location = r.names.opts.Location
		return r.location, nil
	}
	v, err := r.LBs.GetVNet(ctx, r.names.vnetID)
	if err != nil {
		return "", fmt.Errorf("read vnet %s for the load balancers' region: %w", r.names.vnetID, err)
	}
	r.location = deref(v.Location)
	return r.location, nil
}

// failed records a Warning Event on the Service for an ARM failure and
// returns it, so the reconcile is retried with backoff.
func (r *ServiceReconciler) failed(svc *corev1.Service, err error) error {
	r.warn(svc, "LoadBalancerFailed", err.Error())
	return err
}

func (r *ServiceReconciler) warn(svc *corev1.Service, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, reason, "SyncLoadBalancer", "%s", eventNote(msg))
	}
}

// SetupWithManager registers the controller: Services, and their
// EndpointSlices (a named target port resolves from them). One worker: every
// Service shares two load balancers, whose writes would only refuse each
// other (412).
func (r *ServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.memberWait == 0 {
		r.memberWait = time.Second
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("service-load-balancer").
		For(&corev1.Service{}).
		Watches(&discoveryv1.EndpointSlice{}, sliceToService()).
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}
