package v1alpha1

// Pod annotations that ask for Azure attachments on the IP configuration that
// carries the pod's address. The node agent reads them when the pod starts and
// whenever they change, and writes them into its pool's spec.attachments.
const (
	// AnnotationApplicationSecurityGroups lists, comma-separated, the ARM
	// resource IDs of the application security groups the pod's IP
	// configuration joins.
	AnnotationApplicationSecurityGroups = "network.nicpool.io/application-security-groups"
	// AnnotationLoadBalancerBackendPools lists, comma-separated, the ARM
	// resource IDs of the load balancers' backend address pools the pod's IP
	// configuration joins.
	AnnotationLoadBalancerBackendPools = "network.nicpool.io/load-balancer-backend-pools"
	// AnnotationPublicIP is the ARM resource ID of a public IP address to
	// associate with the pod's IP configuration, or PublicIPCreate.
	AnnotationPublicIP = "network.nicpool.io/public-ip"
)

// PublicIPCreate as the public IP of an attachment asks the operator to create
// a public IP address for the pod (and delete it once the pod is gone).
const PublicIPCreate = "create"

// Limits of one attachment request.
const (
	// MaxApplicationSecurityGroups is the most ASGs one attachment names.
	MaxApplicationSecurityGroups = 20
	// MaxBackendPools is the most backend pools one attachment names.
	MaxBackendPools = 10
)

// States of an attachment in status.attachments.
const (
	// AttachmentApplied: the IP configuration carries exactly what was asked.
	AttachmentApplied = "Applied"
	// AttachmentPending: the operator has not yet written the request to the
	// NIC (its write was throttled, or another write is running).
	AttachmentPending = "Pending"
	// AttachmentRefused: the request cannot be applied as it is; reason and
	// message say why. The operator retries it every limit-retry interval.
	AttachmentRefused = "Refused"
	// AttachmentDetaching: nothing is asked for any more but the IP
	// configuration still carries attachments, or a public IP the operator
	// created still has to be deleted.
	AttachmentDetaching = "Detaching"
)

// ApplicationSecurityGroupID is the ARM resource ID of an application
// security group.
// +kubebuilder:validation:MaxLength=1024
// +kubebuilder:validation:Pattern=`^/subscriptions/[^/]+/[Rr]esource[Gg]roups/[^/]+/providers/[Mm]icrosoft\.[Nn]etwork/[Aa]pplication[Ss]ecurity[Gg]roups/[^/]+$`
type ApplicationSecurityGroupID string

// BackendPoolID is the ARM resource ID of a load balancer's backend address
// pool.
// +kubebuilder:validation:MaxLength=1024
// +kubebuilder:validation:Pattern=`^/subscriptions/[^/]+/[Rr]esource[Gg]roups/[^/]+/providers/[Mm]icrosoft\.[Nn]etwork/[Ll]oad[Bb]alancers/[^/]+/[Bb]ackend[Aa]ddress[Pp]ools/[^/]+$`
type BackendPoolID string

// PublicIPRequest is the ARM resource ID of a public IP address, or "create".
// +kubebuilder:validation:MaxLength=1024
// +kubebuilder:validation:Pattern=`^(create|/subscriptions/[^/]+/[Rr]esource[Gg]roups/[^/]+/providers/[Mm]icrosoft\.[Nn]etwork/[Pp]ublic[Ii][Pp][Aa]ddresses/[^/]+)$`
type PublicIPRequest string

// PodReference names the pod that holds an IP.
type PodReference struct {
	// namespace is the pod's namespace.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// name is the pod's name.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// uid is the pod's metadata.uid; a public IP the operator creates is
	// named from it, so a pod that reuses the name gets a new one.
	// +kubebuilder:validation:MaxLength=64
	UID string `json:"uid"`
}

// IPAttachment is what the pod holding one pool IP asks to attach to that IP's
// configuration on the NIC. Fields left empty ask for nothing; an entry with
// none set asks the operator to detach everything from the IP (the agent keeps
// such an entry, and hands the IP to no pod, until status.attachments shows
// the IP clean).
type IPAttachment struct {
	// ip is the pool IP (one of status.ips) the attachment is for.
	IP IPv4Address `json:"ip"`

	// pod is the pod holding ip, taken from the CNI ADD; Events about the
	// attachment are recorded on it.
	// +optional
	Pod *PodReference `json:"pod,omitempty"`

	// applicationSecurityGroups are the ARM IDs of the application security
	// groups the IP configuration joins (pod annotation
	// network.nicpool.io/application-security-groups). Azure requires them in
	// the NIC's subscription and region, and all ASGs of a NIC's IP
	// configurations in one virtual network.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	ApplicationSecurityGroups []ApplicationSecurityGroupID `json:"applicationSecurityGroups,omitempty"`

	// loadBalancerBackendAddressPools are the ARM IDs of the load balancer
	// backend address pools the IP configuration joins (pod annotation
	// network.nicpool.io/load-balancer-backend-pools). Azure requires the load
	// balancers in the NIC's subscription and region.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	LoadBalancerBackendAddressPools []BackendPoolID `json:"loadBalancerBackendAddressPools,omitempty"`

	// publicIPAddress is the ARM ID of a public IP address to associate with
	// the IP configuration, or "create" for one the operator creates in the
	// NIC's resource group and deletes after the pod has gone (pod annotation
	// network.nicpool.io/public-ip). A public IP serves one IP configuration
	// at a time; the pod's outbound traffic then leaves with it instead of
	// the node's address.
	// +optional
	PublicIPAddress PublicIPRequest `json:"publicIPAddress,omitempty"`
}

// Empty reports whether a asks for nothing (a detach).
func (a IPAttachment) Empty() bool {
	return len(a.ApplicationSecurityGroups) == 0 && len(a.LoadBalancerBackendAddressPools) == 0 && a.PublicIPAddress == ""
}

// IPAttachmentStatus is what the IP configuration of one pool IP carries, and
// how the operator answered the request for it.
type IPAttachmentStatus struct {
	// ip is the pool IP.
	IP IPv4Address `json:"ip"`

	// state is Applied (the configuration carries what was asked), Pending
	// (not written yet), Refused (reason and message say why; retried every
	// limit-retry interval) or Detaching (nothing is asked, something is
	// still attached or a created public IP still exists).
	// +kubebuilder:validation:Enum=Applied;Pending;Refused;Detaching
	State string `json:"state"`

	// reason is a CamelCase word for a Refused or Pending state, such as
	// OtherSubscription or PublicIPInUse.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Reason string `json:"reason,omitempty"`

	// message says in words why the request is refused or pending.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// applicationSecurityGroups are the ASG IDs the IP configuration carries
	// on the NIC.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	ApplicationSecurityGroups []string `json:"applicationSecurityGroups,omitempty"`

	// loadBalancerBackendAddressPools are the backend pool IDs the IP
	// configuration carries on the NIC.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	LoadBalancerBackendAddressPools []string `json:"loadBalancerBackendAddressPools,omitempty"`

	// publicIPAddress is the ID of the public IP address the IP configuration
	// carries on the NIC.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	PublicIPAddress string `json:"publicIPAddress,omitempty"`

	// createdPublicIPAddress is the ID of a public IP address the operator
	// created for this IP ("create"). It is recorded before the create, so a
	// crash never leaks it, and cleared once the address is deleted.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	CreatedPublicIPAddress string `json:"createdPublicIPAddress,omitempty"`
}

// Attached reports whether the IP configuration carries anything, or a public
// IP the operator created still exists.
func (s IPAttachmentStatus) Attached() bool {
	return len(s.ApplicationSecurityGroups) > 0 || len(s.LoadBalancerBackendAddressPools) > 0 ||
		s.PublicIPAddress != "" || s.CreatedPublicIPAddress != ""
}
