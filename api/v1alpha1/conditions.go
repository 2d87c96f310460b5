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
)

// Condition reasons of a NodeIPPool.
const (
	ReasonPerVMLimit  = "PerVMLimit"
	ReasonVNetLimit   = "VNetLimit"
	ReasonSubnetFull  = "SubnetFull"
	ReasonWithinLimit = "WithinLimits"
)

// FinalizerName guards the removal of nicpool's IP configurations from the
// NIC before a pool goes away.
const FinalizerName = "network.nicpool.io/release-ips"

// IPConfigurationPrefix starts the name of every IP configuration nicpool
// creates; configurations without it are never touched.
const IPConfigurationPrefix = "nicpool-"
