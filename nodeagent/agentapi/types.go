// Package agentapi is the versioned wire contract between the nicpool CNI
// plugin and the node agent: JSON over HTTP on the agent's unix socket.
// Both sides import it, so a field is added here once and never renamed.
package agentapi

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

// AttachmentKey identifies one network attachment of a container, the unit
// an IP is held by (CNI's container ID and interface name).
type AttachmentKey struct {
	// ContainerID is CNI_CONTAINERID.
	ContainerID string `json:"containerID"`
	// IfName is CNI_IFNAME, the interface inside the container.
	IfName string `json:"ifName"`
}

// Attachment is an AttachmentKey with what the agent records about its owner.
type Attachment struct {
	AttachmentKey
	// PodNamespace is K8S_POD_NAMESPACE from CNI_ARGS; empty outside Kubernetes.
	PodNamespace string `json:"podNamespace,omitempty"`
	// PodName is K8S_POD_NAME from CNI_ARGS; empty outside Kubernetes.
	PodName string `json:"podName,omitempty"`
	// NetNS is CNI_NETNS, the path of the container's network namespace.
	NetNS string `json:"netns,omitempty"`
}

// AllocateRequest asks for an IP for an attachment. Asking again for the
// same key returns the IP it already holds.
type AllocateRequest struct {
	Attachment
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
}

// ReleaseResponse reports what was released.
type ReleaseResponse struct {
	// IP is the address that was released; empty when nothing was held.
	IP string `json:"ip,omitempty"`
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

// GCRequest lists every attachment the runtime still knows; the agent
// releases the IPs of all others (CNI GC's cni.dev/valid-attachments).
type GCRequest struct {
	ValidAttachments []AttachmentKey `json:"validAttachments"`
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
