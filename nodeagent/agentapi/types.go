// Package agentapi is the versioned wire contract between the nicpool CNI
// plugin and the node agent: JSON over HTTP on the agent's unix socket.
// Both sides import it, so a field is added here once and never renamed.
package agentapi

import "fmt"

// Version is the API version; it is the first element of every path.
const Version = "v1"

// DefaultSocketPath is where the agent listens unless configured otherwise.
const DefaultSocketPath = "/run/nicpool/agent.sock"

// Paths of the API, all POST with a JSON body except Status (GET).
const (
	PathAllocate = "/" + Version + "/allocate"
	PathRelease  = "/" + Version + "/release"
	PathCheck    = "/" + Version + "/check"
	PathStatus   = "/" + Version + "/status"
	PathGC       = "/" + Version + "/gc"
)

// DefaultNetwork is the CNI network name the agent installs its conflist
// under. A request without a network name (from a plugin older than network
// names) is for this network, and allocation records written before network
// names are migrated to it.
const DefaultNetwork = "nicpool"

// AttachmentKey identifies one network attachment of a container, the unit
// an IP is held by: CNI's network name, container ID and interface name.
// The network name keeps a CNI GC of another network (Multus runs one per
// network) from releasing nicpool's attachments.
type AttachmentKey struct {
	// Network is the CNI network name (the conflist's "name");
	// DefaultNetwork when empty.
	Network string `json:"network,omitempty"`
	// ContainerID is CNI_CONTAINERID.
	ContainerID string `json:"containerID"`
	// IfName is CNI_IFNAME, the interface inside the container.
	IfName string `json:"ifName"`
}

// Normalized returns k with an empty Network set to DefaultNetwork.
func (k AttachmentKey) Normalized() AttachmentKey {
	if k.Network == "" {
		k.Network = DefaultNetwork
	}
	return k
}

// Attachment is an AttachmentKey with what the agent records about its owner.
type Attachment struct {
	AttachmentKey
	// PodNamespace is K8S_POD_NAMESPACE from CNI_ARGS; empty outside Kubernetes.
	PodNamespace string `json:"podNamespace,omitempty"`
	// PodName is K8S_POD_NAME from CNI_ARGS; empty outside Kubernetes.
	PodName string `json:"podName,omitempty"`
	// PodUID is K8S_POD_UID from CNI_ARGS: a pod recreated with the same
	// name (a StatefulSet's) has a new UID, so GC tells the two apart.
	// Empty when the runtime does not pass it.
	PodUID string `json:"podUID,omitempty"`
	// NetNS is CNI_NETNS, the path of the container's network namespace.
	NetNS string `json:"netns,omitempty"`
}

// AllocateRequest asks for an IP for an attachment. Asking again for the
// same key returns the IP it already holds.
type AllocateRequest struct {
	Attachment
	// WaitMillis is how long the caller will wait for the answer. When no
	// IP is free the agent answers "try again later" before then, so the
	// caller learns why (a full node says so) instead of timing out on
	// its own. Zero means the agent's --alloc-timeout alone bounds the wait.
	WaitMillis int64 `json:"waitMillis,omitempty"`
}

// AllocateResponse carries the IP given to the attachment.
type AllocateResponse struct {
	// IP is the pod's IPv4 address (used as a /32).
	IP string `json:"ip"`
	// SubnetCIDR is the VNet subnet the IP belongs to, for information.
	SubnetCIDR string `json:"subnetCIDR,omitempty"`
	// PrimaryIP is the node's own VNet address.
	PrimaryIP string `json:"primaryIP,omitempty"`
}

// ReleaseRequest returns the IP held by an attachment. Releasing a key that
// holds nothing succeeds.
type ReleaseRequest struct {
	AttachmentKey
	// DeleteVeth asks the agent to delete the attachment's host veth and
	// to free the IP once the veth is gone, answering at once (the plugin's
	// DEL). An agent that does so says VethDeleting in its answer; one that
	// does not (older than this field) released the IP synchronously.
	DeleteVeth bool `json:"deleteVeth,omitempty"`
}

// ReleaseResponse reports what was released.
type ReleaseResponse struct {
	// IP is the address that was released; empty when nothing was held.
	IP string `json:"ip,omitempty"`
	// VethDeleting is true when the agent took over deleting the host veth
	// (DeleteVeth): the IP stays held until the veth is gone.
	VethDeleting bool `json:"vethDeleting,omitempty"`
}

// CheckRequest asks which IP an attachment holds.
type CheckRequest struct {
	AttachmentKey
}

// CheckResponse is the agent's record of an attachment.
type CheckResponse struct {
	Attachment
	// IP is the address the attachment holds.
	IP string `json:"ip"`
}

// StatusResponse tells whether the agent can serve new pods.
type StatusResponse struct {
	// Ready is true when the agent can hand out an IP now or soon.
	Ready bool `json:"ready"`
	// Reason explains Ready=false.
	Reason string `json:"reason,omitempty"`
	// Capacity is the number of IPs the agent may hand out (status.ips less
	// spec.ipsNotInUse).
	Capacity int `json:"capacity"`
	// Allocated is the number of IPs held by attachments.
	Allocated int `json:"allocated"`
	// Free is Capacity minus Allocated.
	Free int `json:"free"`
}

// GCRequest lists every attachment of one network the runtime still knows;
// the agent releases the IPs of all other attachments of that network (CNI
// GC's cni.dev/valid-attachments). Attachments of other networks are never
// touched.
type GCRequest struct {
	// Network is the CNI network being collected; DefaultNetwork when empty.
	Network string `json:"network,omitempty"`
	// ValidAttachments is required: a missing or null list is refused, an
	// empty list means no attachment of Network is valid.
	ValidAttachments []AttachmentKey `json:"validAttachments"`
}

// Collects returns the network r collects and a function telling whether
// an attachment survives the GC: those of other networks always do, those
// of r's network when listed. A missing or null ValidAttachments is refused
// (read as "nothing is valid" it would release every pod's IP), as is a
// listed attachment of another network. Errors are *Error with
// CodeInvalidFields.
func (r GCRequest) Collects() (network string, keep func(AttachmentKey) bool, err error) {
	if r.ValidAttachments == nil {
		return "", nil, &Error{Code: CodeInvalidFields, Message: "invalid request: validAttachments is required (an empty list means no attachment is valid)"}
	}
	network = AttachmentKey{Network: r.Network}.Normalized().Network
	valid := make(map[AttachmentKey]bool, len(r.ValidAttachments))
	for _, k := range r.ValidAttachments {
		if k.Network == "" {
			k.Network = network
		}
		if k.Network != network {
			return "", nil, &Error{Code: CodeInvalidFields, Message: fmt.Sprintf("invalid request: validAttachments lists an attachment of network %.64q in a GC of network %.64q", k.Network, network)}
		}
		valid[k] = true
	}
	keep = func(k AttachmentKey) bool {
		k = k.Normalized()
		return k.Network != network || valid[k]
	}
	return network, keep, nil
}

// GCResponse lists the attachments whose IPs were released.
type GCResponse struct {
	Released []AttachmentKey `json:"released,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	// Code is a CNI error code the plugin passes on to the runtime, for
	// example 11 (try again later) when no IP became free in time.
	Code uint `json:"code"`
	// Message says what went wrong.
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return e.Message }

// CNI error codes the agent uses (see the CNI specification).
const (
	CodeInternal      uint = 999 // plugin-specific: the agent failed
	CodeInvalidFields uint = 7   // a required field is missing or malformed
	CodeTryAgainLater uint = 11  // no IP free yet; the runtime retries
	CodeNotFound      uint = 404 // plugin-specific: no record for the attachment
)
