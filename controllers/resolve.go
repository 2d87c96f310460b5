package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// resolveNIC returns the pool's NIC ID: spec.nicID, else the one remembered
// in status, else the NIC attached to the Node's VM. It returns "" (and sets
// o) when the pool cannot be served; a Node change retriggers the pass.
func (r *PoolReconciler) resolveNIC(ctx context.Context, pool *nicpoolv1.NodeIPPool, o *outcome) (string, ctrl.Result, error) {
	if id := pool.Spec.NICID; id != "" {
		if _, err := azure.ParseNICID(id); err != nil {
			o.readyReason, o.readyMsg = "InvalidNICID", err.Error()
			return "", ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("parse spec.nicID of pool %s: %w", pool.Name, err))
		}
		return id, ctrl.Result{}, nil
	}
	if pool.Status.NICID != "" {
		return pool.Status.NICID, ctrl.Result{}, nil
	}
	node := &corev1.Node{}
	if err := r.Get(ctx, types.NamespacedName{Name: pool.Name}, node); err != nil {
		if apierrors.IsNotFound(err) {
			o.readyReason, o.readyMsg = ReasonNodeNotFound, "no Node named "+pool.Name
			return "", ctrl.Result{}, nil
		}
		return "", ctrl.Result{}, fmt.Errorf("get node %s: %w", pool.Name, err)
	}
	vmID, err := azure.VMIDFromProviderID(node.Spec.ProviderID)
	switch {
	case errors.Is(err, azure.ErrNoProviderID):
		o.readyReason, o.readyMsg = ReasonNoProviderID, "the Node has no spec.providerID yet; set spec.nicID to serve it anyway"
		return "", ctrl.Result{}, nil
	case err != nil:
		o.readyReason, o.readyMsg = ReasonUnsupportedProvider, err.Error()
		return "", ctrl.Result{}, nil
	}
	nicID, err := r.NICs.FindNICForVM(ctx, vmID)
	if err != nil {
		res, err := r.armFailure(pool, o, err, false)
		return "", res, err
	}
	return nicID, ctrl.Result{}, nil
}

// ensureFinalizer adds the finalizer before the pool's first NIC write.
func (r *PoolReconciler) ensureFinalizer(ctx context.Context, pool *nicpoolv1.NodeIPPool) error {
	if controllerutil.ContainsFinalizer(pool, nicpoolv1.FinalizerName) {
		return nil
	}
	patch := client.MergeFrom(pool.DeepCopy())
	controllerutil.AddFinalizer(pool, nicpoolv1.FinalizerName)
	if err := r.Patch(ctx, pool, patch); err != nil {
		return fmt.Errorf("add finalizer to pool %s: %w", pool.Name, err)
	}
	return nil
}

// recordIdentity fills in the NIC, subnet and VNet fields of the status. On
// the pool's first NIC, and after a move to another, it writes them at once:
// after a crash between the first NIC write and the pass's status write, the
// ledger rebuild must still know the pool's VNet, and the NIC claims which
// pool serves the NIC.
func (r *PoolReconciler) recordIdentity(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface) error {
	primary := nicsync.PrimaryConfig(nic)
	if primary == nil || primary.Properties == nil || primary.Properties.Subnet == nil || primary.Properties.Subnet.ID == nil {
		return fmt.Errorf("read nic %s: no primary ip configuration with a subnet", deref(nic.ID))
	}
	st := &pool.Status
	// On a pool's first NIC, and on a move to another, the claim must be
	// recorded before any write to the NIC.
	first := st.VNetID == "" || !strings.EqualFold(st.NICID, deref(nic.ID))
	st.NICID, st.NICName = deref(nic.ID), deref(nic.Name)
	st.PrimaryIP = nicpoolv1.IPv4Address(deref(primary.Properties.PrivateIPAddress))
	subnetID := *primary.Properties.Subnet.ID
	if !first && st.SubnetID == subnetID && st.SubnetCIDR != "" && st.VNetID != "" {
		// Service endpoints change when the network administrator enables
		// them: follow them through the cached subnet read (one ARM read per
		// subnet per cache period), keeping the last ones when the read fails
		// so a throttled read never holds the NIC reconcile back.
		if subnet, err := r.NICs.GetSubnet(ctx, subnetID); err == nil {
			st.SubnetServiceEndpoints = serviceEndpoints(subnet)
		}
		return nil
	}
	vnetID, err := azure.VNetIDFromSubnetID(subnetID)
	if err != nil {
		return fmt.Errorf("read nic %s: %w", st.NICID, err)
	}
	subnet, err := r.NICs.GetSubnet(ctx, subnetID)
	if err != nil {
		return err
	}
	vnet, err := r.NICs.GetVNet(ctx, vnetID)
	if err != nil {
		return err
	}
	st.SubnetID, st.VNetID, st.SubnetCIDR = subnetID, vnetID, nicpoolv1.IPv4CIDR(subnetCIDR(subnet))
	st.SubnetServiceEndpoints = serviceEndpoints(subnet)
	if vnet.Properties != nil && vnet.Properties.AddressSpace != nil {
		st.VNetAddressSpace = nil
		for _, p := range vnet.Properties.AddressSpace.AddressPrefixes {
			if p != nil {
				st.VNetAddressSpace = append(st.VNetAddressSpace, nicpoolv1.IPv4CIDR(*p))
			}
		}
	}
	if !first {
		return nil
	}
	identity := pool.DeepCopy()
	if err := r.Status().Update(ctx, identity); err != nil {
		return fmt.Errorf("record nic identity of pool %s: %w", pool.Name, err)
	}
	pool.ResourceVersion = identity.ResourceVersion
	return nil
}

// serviceEndpoints returns the subnet's service endpoints in status form,
// sorted by service; nil when it has none.
func serviceEndpoints(s *armnetwork.Subnet) []nicpoolv1.SubnetServiceEndpoint {
	if s == nil || s.Properties == nil {
		return nil
	}
	var out []nicpoolv1.SubnetServiceEndpoint
	for _, e := range s.Properties.ServiceEndpoints {
		if e == nil || e.Service == nil || *e.Service == "" {
			continue
		}
		ep := nicpoolv1.SubnetServiceEndpoint{Service: *e.Service}
		for _, l := range e.Locations {
			if l != nil && *l != "" {
				ep.Locations = append(ep.Locations, *l)
			}
		}
		out = append(out, ep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// subnetCIDR returns the subnet's (first) IPv4 prefix.
func subnetCIDR(s *armnetwork.Subnet) string { return nicsync.SubnetCIDR(s) }

// armFailure turns an ARM error into the pass's outcome and result:
// RequeueAfter for throttling (honouring Retry-After), conflicts, writes
// still running and missing NICs; an error (with backoff) otherwise.
func (r *PoolReconciler) armFailure(pool *nicpoolv1.NodeIPPool, o *outcome, err error, afterWrite bool) (ctrl.Result, error) {
	kind := azure.Classify(err)
	switch kind {
	case azure.KindThrottled:
		o.failed(ReasonThrottled, kind, err)
		if o.retryAfter <= 0 {
			o.retryAfter = r.ThrottleRetry
		}
		return ctrl.Result{RequeueAfter: o.retryAfter}, nil
	case azure.KindPending:
		o.failed(ReasonPending, kind, err)
		return ctrl.Result{RequeueAfter: r.pendingRequeue(err)}, nil
	case azure.KindNotFound:
		o.failed(ReasonNICNotFound, kind, err)
		if !afterWrite && pool.Status.VNetID != "" {
			// The NIC is gone, and its IP configurations with it.
			r.Ledger.Settle(pool.Name, pool.Status.VNetID, 0)
			pool.Status.IPs, pool.Status.AllocatedIPCount = nil, 0
		}
		return ctrl.Result{RequeueAfter: r.LimitRetry}, nil
	case azure.KindConflict:
		o.failed(ReasonARMError, kind, err)
		wait, ok := azure.RetryAfter(err)
		if !ok || wait <= 0 {
			wait = time.Second
		}
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	o.failed(ReasonARMError, kind, err)
	return ctrl.Result{}, err
}

// pendingRequeue is when to look again at a NIC write still running: when ARM
// said it expects it done (a write the client stopped waiting for before its
// first poll), else PendingRetry, which also bounds ARM's hint.
func (r *PoolReconciler) pendingRequeue(err error) time.Duration {
	if wait, ok := azure.RetryAfter(err); ok && wait > 0 && wait < r.PendingRetry {
		return wait
	}
	return r.PendingRetry
}
