package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
)

// attachStatus returns status.attachments for the NIC as the pass leaves it:
// one entry per IP whose configuration carries a backend pool or a public
// IP, whose request is not empty, or whose created public IP still exists.
// ASGs are listed only for an IP whose pod asked for them: every
// configuration carries the NIC's.
func attachStatus(configs []nicsync.Config, published []nicpoolv1.PoolIP, ap *attachPass) []nicpoolv1.IPAttachmentStatus {
	onNIC := map[string]attachment{}
	for _, c := range configs {
		if c.Owned() && c.IP != "" {
			onNIC[c.IP] = c.Att
		}
	}
	ips := map[string]bool{}
	for ip := range onNIC {
		ips[ip] = true
	}
	for ip, w := range ap.wants {
		if !w.Empty() {
			ips[ip] = true
		}
	}
	for ip := range ap.created {
		ips[ip] = true
	}
	pub := map[string]bool{}
	for _, p := range published {
		pub[string(p.IP)] = true
	}
	var out []nicpoolv1.IPAttachmentStatus
	for ip := range ips {
		cur, want := onNIC[ip], ap.wants[ip]
		if len(want.ASGs) == 0 {
			// The NIC's ASGs, carried by all its configurations, are no
			// pod's attachment: nothing to report or detach.
			cur.ASGs = nil
		}
		st := nicpoolv1.IPAttachmentStatus{
			IP: nicpoolv1.IPv4Address(ip), ApplicationSecurityGroups: cur.ASGs,
			LoadBalancerBackendAddressPools: cur.Pools, PublicIPAddress: cur.PublicIP,
			CreatedPublicIPAddress: ap.created[ip],
		}
		refused, isRefused := ap.refused[ip]
		switch {
		case !want.Empty() && pub[ip] && want.Same(cur):
			st.State = nicpoolv1.AttachmentApplied
		case isRefused && !want.Empty():
			st.State, st.Reason, st.Message = nicpoolv1.AttachmentRefused, refused[0], truncate(refused[1])
		case !want.Empty() && !pub[ip]:
			st.State, st.Reason, st.Message = nicpoolv1.AttachmentPending, "IPNotPublished", "the IP is not in status.ips"
		case !want.Empty():
			st.State, st.Reason, st.Message = nicpoolv1.AttachmentPending, ReasonNotWritten, "the NIC write carrying it has not succeeded yet"
		case st.Attached():
			st.State = nicpoolv1.AttachmentDetaching
		default:
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b nicpoolv1.IPAttachmentStatus) int {
		x, ex := netip.ParseAddr(string(a.IP))
		y, ey := netip.ParseAddr(string(b.IP))
		if ex != nil || ey != nil {
			return strings.Compare(string(a.IP), string(b.IP))
		}
		return x.Compare(y)
	})
	return out
}

// recordAttachments writes status.attachments from the NIC the pass ends
// with, and moves attachmentsObservedGeneration when the pass knows the NIC
// carries it (so the agent may hand out an IP it asked to detach).
func (r *PoolReconciler) recordAttachments(pool *nicpoolv1.NodeIPPool, nic *armnetwork.Interface, ap *attachPass) {
	if ap == nil {
		return
	}
	pool.Status.Attachments = attachStatus(nicsync.Configs(nic), pool.Status.IPs, ap)
	for _, st := range pool.Status.Attachments {
		if st.State == nicpoolv1.AttachmentApplied {
			delete(ap.refused, string(st.IP))
			r.refusals.clear(pool.Name, string(st.IP))
		}
	}
	if ap.settled && azure.NICProvisioning(nic) == azure.ProvisioningSucceeded {
		pool.Status.AttachmentsObservedGeneration = pool.Generation
	}
}

// setAttachmentsCondition sets AttachmentsApplied from status.attachments,
// or removes it when nothing is asked for or left.
func setAttachmentsCondition(pool *nicpoolv1.NodeIPPool) {
	var refused, pending, detaching []string
	for _, st := range pool.Status.Attachments {
		switch st.State {
		case nicpoolv1.AttachmentRefused:
			refused = append(refused, fmt.Sprintf("%s (%s: %s)", st.IP, st.Reason, st.Message))
		case nicpoolv1.AttachmentPending:
			pending = append(pending, string(st.IP))
		case nicpoolv1.AttachmentDetaching:
			detaching = append(detaching, string(st.IP))
		}
	}
	cond := metav1.Condition{Type: nicpoolv1.ConditionAttachmentsApplied, ObservedGeneration: pool.Generation}
	switch {
	case len(refused) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, nicpoolv1.ReasonAttachmentsRefused
		cond.Message = "refused: " + strings.Join(refused, "; ")
	case len(pending) > 0 || len(detaching) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, nicpoolv1.ReasonAttachmentsPending
		cond.Message = fmt.Sprintf("not yet on the NIC: %v; still to detach: %v", pending, detaching)
	case len(pool.Status.Attachments) > 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, nicpoolv1.ReasonAttachmentsApplied
		cond.Message = fmt.Sprintf("%d IPs carry their attachments", len(pool.Status.Attachments))
	default:
		meta.RemoveStatusCondition(&pool.Status.Conditions, nicpoolv1.ConditionAttachmentsApplied)
		return
	}
	cond.Message = truncate(cond.Message)
	meta.SetStatusCondition(&pool.Status.Conditions, cond)
}

// podRef is the object reference Events about ip's attachment are recorded
// on: the pod that asked, or nil.
func podRef(p *nicpoolv1.PodReference) *corev1.ObjectReference {
	if p == nil || p.Name == "" || p.Namespace == "" {
		return nil
	}
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: types.UID(p.UID)}
}

// emitAttachmentEvents records, on the pod that asked and on the pool, a
// Warning for each newly refused request and a Normal event for each request
// that became Applied.
func (r *PoolReconciler) emitAttachmentEvents(ctx context.Context, pool *nicpoolv1.NodeIPPool, prev []nicpoolv1.IPAttachmentStatus, ap *attachPass) {
	if ap == nil {
		return
	}
	was := map[string]string{}
	for _, st := range prev {
		was[string(st.IP)] = st.State
	}
	log := ctrl.LoggerFrom(ctx)
	for _, st := range pool.Status.Attachments {
		ip := string(st.IP)
		ref := podRef(ap.pods[ip])
		switch {
		case st.State == nicpoolv1.AttachmentRefused && slices.Contains(ap.newlyRefused, ip):
			log.Info("Refused an attachment request", "ip", ip, "reason", st.Reason, "message", st.Message)
			if r.Recorder == nil {
				continue
			}
			// An Event's note holds at most 1 kB; status keeps the whole message.
			msg := eventNote(st.Message)
			if ref != nil {
				r.Recorder.Eventf(ref, nil, corev1.EventTypeWarning, "AttachmentRefused", "AttachIPConfiguration",
					"Azure attachments of IP %s on node %s not applied: %s: %s", ip, pool.Name, st.Reason, msg)
			}
			r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, "AttachmentRefused", "AttachIPConfiguration",
				"IP %s: %s: %s", ip, st.Reason, msg)
		case st.State == nicpoolv1.AttachmentApplied && was[ip] != nicpoolv1.AttachmentApplied:
			if r.Recorder != nil && ref != nil {
				r.Recorder.Eventf(ref, nil, corev1.EventTypeNormal, "AttachmentApplied", "AttachIPConfiguration",
					"IP %s on node %s carries %s", ip, pool.Name, eventNote(describe(st)))
			}
		}
	}
}

// describe says in words what an IP configuration carries.
func describe(st nicpoolv1.IPAttachmentStatus) string {
	var parts []string
	if len(st.ApplicationSecurityGroups) > 0 {
		parts = append(parts, fmt.Sprintf("application security groups %v", st.ApplicationSecurityGroups))
	}
	if len(st.LoadBalancerBackendAddressPools) > 0 {
		parts = append(parts, fmt.Sprintf("backend pools %v", st.LoadBalancerBackendAddressPools))
	}
	if st.PublicIPAddress != "" {
		parts = append(parts, "public IP "+st.PublicIPAddress)
	}
	return strings.Join(parts, ", ")
}

// eventNote shortens s to fit an Event's note (1 kB) with the words around it.
func eventNote(s string) string {
	const maxNote = 800
	if len(s) > maxNote {
		return s[:maxNote] + "..."
	}
	return s
}
