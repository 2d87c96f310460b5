package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// createPublicIPs creates the public IPs that requests asking for "create"
// need and the NIC does not carry yet. Each is recorded in
// status.attachments (createdPublicIPAddress) before it is created, so an
// operator killed at any point finds it again and deletes it once no pod
// wants it: names are derived from pool, IP and pod UID, so a second create
// finds the first. A create that fails refuses its request until the retry.
func (r *PoolReconciler) createPublicIPs(ctx context.Context, pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, ap *attachPass) error {
	if len(ap.creates) == 0 || r.PublicIPs == nil {
		return nil
	}
	_, published := agentView(pool)
	carried := map[string]string{}
	for _, c := range nicsync.Configs(nic) {
		if c.Owned() && published[c.IP] == c.Name {
			carried[c.IP] = c.Att.PublicIP
		}
	}
	var need []string
	record := false
	for ip, id := range ap.creates {
		if ap.hold[ip] || (attachment{PublicIP: id}).Same(attachment{PublicIP: carried[ip]}) {
			continue
		}
		if old := ap.created[ip]; old != "" && !(attachment{PublicIP: old}).Same(attachment{PublicIP: id}) {
			// The IP's previous pod's public IP goes first (a later pass).
			ap.hold[ip] = true
			continue
		}
		if ap.created[ip] == "" {
			ap.created[ip], record = id, true
		}
		need = append(need, ip)
	}
	if record {
		base := pool.DeepCopy()
		pool.Status.Attachments = attachStatus(nicsync.Configs(nic), pool.Status.IPs, ap)
		if err := r.Status().Patch(ctx, pool, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("record public ips to create for pool %s: %w", pool.Name, err)
		}
	}
	for _, ip := range need {
		if err := r.PublicIPs.CreatePublicIP(ctx, ap.creates[ip], deref(nic.Location)); err != nil {
			r.refuseAttachment(pool, ap, ip, ap.wants[ip], ReasonPublicIPCreateFailed,
				fmt.Sprintf("create public ip %s: %v", ap.creates[ip], err), time.Now())
		}
	}
	return nil
}

// deleteCreatedPublicIPs deletes the public IPs the operator created that no
// IP configuration carries and no request wants any more. Call it only when
// the pass knows what the NIC carries. One that cannot be deleted now stays
// recorded and is tried again on a later pass.
func (r *PoolReconciler) deleteCreatedPublicIPs(ctx context.Context, nic *armnetwork.Interface, ap *attachPass) {
	if r.PublicIPs == nil {
		return
	}
	var carried []string
	for _, c := range nicsync.Configs(nic) {
		if c.Att.PublicIP != "" {
			carried = append(carried, c.Att.PublicIP)
		}
	}
	for ip, id := range ap.created {
		if ap.wantsCreated(ip) || slices.ContainsFunc(carried, func(x string) bool { return strings.EqualFold(x, id) }) {
			continue
		}
		if err := r.PublicIPs.DeletePublicIP(ctx, id); err != nil {
			ctrl.LoggerFrom(ctx).Info("Failed to delete a public IP the operator created; retrying later", "publicIP", id, "error", err.Error())
			continue
		}
		delete(ap.created, ip)
	}
}

// wantsCreated reports whether ip's request still wants the public IP the
// operator created for it.
func (ap *attachPass) wantsCreated(ip string) bool {
	id := ap.created[ip]
	return id != "" && strings.EqualFold(ap.wants[ip].PublicIP, id)
}

// deletesOwed reports whether a created public IP waits to be deleted.
func (ap *attachPass) deletesOwed() bool {
	for ip := range ap.created {
		if !ap.wantsCreated(ip) {
			return true
		}
	}
	return false
}

// deleteAllCreatedPublicIPs deletes every public IP the operator created for
// a pool whose configurations are gone from the NIC (the pool is going).
func (r *PoolReconciler) deleteAllCreatedPublicIPs(ctx context.Context, pool *nicpoolv1.NodeIPPool) error {
	if r.PublicIPs == nil {
		return nil
	}
	var errs []error
	for _, st := range pool.Status.Attachments {
		if st.CreatedPublicIPAddress == "" {
			continue
		}
		if err := r.PublicIPs.DeletePublicIP(ctx, st.CreatedPublicIPAddress); err != nil {
			errs = append(errs, fmt.Errorf("delete public ip %s created for pool %s: %w", st.CreatedPublicIPAddress, pool.Name, err))
		}
	}
	return errors.Join(errs...)
}
