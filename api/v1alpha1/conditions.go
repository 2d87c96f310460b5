package v1alpha1

// Condition types of a NodeIPPool.
const (
	// ConditionReady is True when the pool's NIC matches what was granted.
	ConditionReady = "Ready"
	// ConditionLimitReached is True when the pool got fewer IPs than requested
	// because of a limit; its reason says which.
	ConditionLimitReached = "LimitReached"
	// ConditionThrottled is True while ARM is throttling the operator's calls.
	ConditionThrottled = "Throttled"
	// ConditionNICNotFound is True when the pool's NIC cannot be found.
	ConditionNICNotFound = "NICNotFound"
	// ConditionDegraded is True when the last ARM call failed for another reason.
	ConditionDegraded = "Degraded"
	// ConditionAttachmentsApplied is True when every attachment of
	// spec.attachments is on the NIC (reason Applied); False when one is not
	// yet (reason Pending) or cannot be (reason Refused; status.attachments
	// says which and why). It is absent while nothing is asked for or left.
	ConditionAttachmentsApplied = "AttachmentsApplied"
)

// Condition reasons of a NodeIPPool.
const (
	ReasonPerVMLimit  = "PerVMLimit"
	ReasonVNetLimit   = "VNetLimit"
	ReasonSubnetFull  = "SubnetFull"
	ReasonWithinLimit = "WithinLimits"

	// Reasons of the AttachmentsApplied condition.
	ReasonAttachmentsApplied = "Applied"
	ReasonAttachmentsPending = "Pending"
	ReasonAttachmentsRefused = "Refused"

	// ReasonNICInUse (Ready=False): another NodeIPPool already serves the
	// pool's NIC. One NIC serves one pool; this one gets no IPs and no NIC
	// write until the other lets the NIC go or this one names another NIC.
	ReasonNICInUse = "NICInUse"
	// ReasonNICChangePending (Ready=False): spec.nicID names another NIC
	// than the one the pool's IPs are on. The pool stays on its NIC (its
	// pods use those IPs) until the agent has released them all.
	ReasonNICChangePending = "NICChangePending"
	// ReasonDeletionPending (Ready=False): the pool was deleted while its
	// Node exists. Its IPs stay for the node's pods and none is added;
	// released IPs still go. The pool goes once the Node is gone or the
	// agent has released every IP.
	ReasonDeletionPending = "DeletionPending"
)

// FinalizerName guards the removal of nicpool's IP configurations from the
// NIC before a pool goes away.
const FinalizerName = "network.nicpool.io/release-ips"

// IPConfigurationPrefix starts the name of every IP configuration nicpool
// creates; configurations without it are never touched.
const IPConfigurationPrefix = "nicpool-"
