package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
)

// Reasons of the Ready, Throttled, NICNotFound and Degraded conditions.
const (
	ReasonReconciled          = "Reconciled"
	ReasonNoProviderID        = "NoProviderID"
	ReasonUnsupportedProvider = "UnsupportedProvider"
	ReasonNodeNotFound        = "NodeNotFound"
	ReasonNICNotFound         = "NICNotFound"
	ReasonOutOfScope          = "OutOfScope"
	ReasonNICFound            = "NICFound"
	ReasonThrottled           = "Throttled"
	ReasonNotThrottled        = "NotThrottled"
	ReasonPending             = "OperationPending"
	ReasonARMError            = "ARMError"
	ReasonHealthy             = "Healthy"
	// ReasonProvisioningFailed (Ready=False, Degraded=True): the NIC is in
	// provisioningState Failed and re-applying its configuration has not
	// succeeded yet; the IPs the failed write added are withheld.
	ReasonProvisioningFailed = "NICProvisioningFailed"
)

// How a pass came to know the NIC was left Failed (nicpool_nic_failed_total).
const (
	failedByRead  = "read"
	failedByWrite = "write"
)

// Outcomes of re-applying a Failed NIC (nicpool_nic_repairs_total).
const (
	repairSucceeded = "succeeded"
	repairFailed    = "failed"
)

// outcome is what one pass observed; it becomes the pool's conditions, its
// events and the reconcile result.
type outcome struct {
	// readyReason is "" (Ready=True, Reconciled) or why the pool is not ready.
	readyReason, readyMsg string
	// limitReason is "" or PerVMLimit, VNetLimit, SubnetFull.
	limitReason, limitMsg string
	// throttle is how long ARM asked to wait, when it throttled.
	throttled  bool
	retryAfter time.Duration
	// nicNotFound is true when ARM said the NIC (or its VM's NIC) is gone.
	nicNotFound bool
	// armErr is the ARM failure of the pass, if any.
	armErr  error
	armKind azure.Kind
	// nicFailed is true when the NIC is still in provisioningState Failed
	// at the end of the pass.
	nicFailed bool
	// failedBy is how the pass found the NIC Failed ("" if it did not).
	failedBy string
	// repair is the outcome of re-applying a Failed NIC ("" if none).
	repair string
	// attach is what the pass decided about spec.attachments (nil when it
	// did not reach the NIC).
	attach *attachPass
}

// failed records an ARM failure of the pass.
func (o *outcome) failed(reason string, kind azure.Kind, err error) {
	o.readyReason, o.readyMsg = reason, err.Error()
	o.armErr, o.armKind = err, kind
	switch kind {
	case azure.KindThrottled:
		o.throttled = true
		o.retryAfter, _ = azure.RetryAfter(err)
	case azure.KindNotFound:
		o.nicNotFound = true
	}
}

// setConditions writes the pass's outcome into the pool's conditions, all
// with the generation the pass reconciled.
func setConditions(pool *nicpoolv1.NodeIPPool, o *outcome) {
	gen := pool.Generation
	set := func(typ string, ok bool, reason, msg string) {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&pool.Status.Conditions, metav1.Condition{
			Type: typ, Status: st, Reason: reason, Message: truncate(msg), ObservedGeneration: gen,
		})
	}
	if o.readyReason == "" {
		set(nicpoolv1.ConditionReady, true, ReasonReconciled, fmt.Sprintf("%d IPs on the NIC", pool.Status.AllocatedIPCount))
	} else {
		set(nicpoolv1.ConditionReady, false, o.readyReason, o.readyMsg)
	}
	if o.limitReason != "" {
		set(nicpoolv1.ConditionLimitReached, true, o.limitReason, o.limitMsg)
	} else {
		set(nicpoolv1.ConditionLimitReached, false, nicpoolv1.ReasonWithinLimit, "the request is granted in full")
	}
	if o.throttled {
		set(nicpoolv1.ConditionThrottled, true, ReasonThrottled, fmt.Sprintf("ARM throttled the operator; retrying after %s", o.retryAfter))
	} else {
		set(nicpoolv1.ConditionThrottled, false, ReasonNotThrottled, "")
	}
	if o.nicNotFound {
		set(nicpoolv1.ConditionNICNotFound, true, ReasonNICNotFound, o.readyMsg)
	} else {
		set(nicpoolv1.ConditionNICNotFound, false, ReasonNICFound, "")
	}
	degraded := o.armErr != nil && !o.throttled && !o.nicNotFound && o.armKind != azure.KindPending
	switch {
	case o.nicFailed:
		msg := "the NIC is in provisioningState Failed: the IPs its failed write added are withheld until its configuration is re-applied"
		if o.armErr != nil {
			msg += ": " + o.armErr.Error()
		}
		set(nicpoolv1.ConditionDegraded, true, ReasonProvisioningFailed, msg)
	case degraded:
		set(nicpoolv1.ConditionDegraded, true, ReasonARMError, o.armErr.Error())
	default:
		set(nicpoolv1.ConditionDegraded, false, ReasonHealthy, "")
	}
}

// truncate keeps a condition message within the API's 32768-byte limit.
func truncate(s string) string {
	const maxLen = 4096
	if len(s) > maxLen {
		return s[:maxLen]
	}
	return s
}

// emitEvents records Events for limit hits (when the reason changes), for ARM
// failures, and for a NIC found in provisioningState Failed and its repair.
func (r *PoolReconciler) emitEvents(pool *nicpoolv1.NodeIPPool, prevLimit string, o *outcome) {
	if r.Recorder == nil {
		return
	}
	if o.limitReason != "" && o.limitReason != prevLimit {
		r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, "LimitReached", "Grant", "%s: %s", o.limitReason, o.limitMsg)
	}
	if o.failedBy != "" {
		r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, ReasonProvisioningFailed, "UpdateNIC",
			"NIC %s was left in provisioningState Failed (found on a %s): the IPs its failed write added are withheld; re-applying its configuration",
			pool.Status.NICID, o.failedBy)
	}
	if o.repair == repairSucceeded {
		r.Recorder.Eventf(pool, nil, corev1.EventTypeNormal, "NICRepaired", "UpdateNIC",
			"re-applied the configuration of NIC %s: provisioningState Succeeded, %d IPs", pool.Status.NICID, pool.Status.AllocatedIPCount)
	}
	// A failed operation the pass found and handled has its own Event above;
	// one on the finalizer's release path has only this one.
	if o.armErr != nil && o.armKind != azure.KindPending && (o.armKind != azure.KindOperationFailed || o.failedBy == "") {
		r.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, "ARM"+o.armKind.String(), "UpdateNIC", "%s", truncate(o.armErr.Error()))
	}
}

// limitReason returns the LimitReached reason currently on the pool, or "".
func limitReason(pool *nicpoolv1.NodeIPPool) string {
	c := meta.FindStatusCondition(pool.Status.Conditions, nicpoolv1.ConditionLimitReached)
	if c == nil || c.Status != metav1.ConditionTrue {
		return ""
	}
	return c.Reason
}
