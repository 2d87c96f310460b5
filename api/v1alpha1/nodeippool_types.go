package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// MaxIPsPerNode is the most secondary IP configurations nicpool places on one
// VM's NIC. Azure allows 256 IP configurations per NIC; one is the primary and
// the rest is kept as headroom for configurations nicpool does not own.
const MaxIPsPerNode = 250

// MaxIPsPerVNet is the most secondary IP configurations nicpool places across
// all NICs of one virtual network.
const MaxIPsPerVNet = 16000

// IPv4Address is a dotted-quad IPv4 address such as 10.240.0.17.
// +kubebuilder:validation:MaxLength=15
// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address such as 10.240.0.17"
type IPv4Address string

// IPv4CIDR is an IPv4 address prefix such as 10.240.0.0/16.
// +kubebuilder:validation:MaxLength=18
// +kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self).ip().family() == 4",message="must be an IPv4 CIDR such as 10.240.0.0/16"
type IPv4CIDR string

// NodeIPPoolSpec is the desired state of a node's pool of VNet IP addresses.
// The node agent writes requestedIPCount and ipsNotInUse; an administrator may
// set nicID.
type NodeIPPoolSpec struct {
	// nicID is the ARM resource ID of the network interface whose secondary IP
	// configurations back this pool, for example
	// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Network/networkInterfaces/<name>.
	// Leave it empty to let the operator find the NIC attached to the node's VM
	// (from the Node's spec.providerID). Set it when the VM has several NICs.
	// One NIC serves one pool: a pool naming a NIC another pool already
	// serves gets Ready=False, reason NICInUse, and no IPs. While status.ips
	// is not empty, nicID may only be cleared or set to the NIC in
	// status.nicID: the pool's IPs cannot move with it.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/subscriptions/[^/]+/[Rr]esource[Gg]roups/[^/]+/providers/[Mm]icrosoft\.[Nn]etwork/[Nn]etwork[Ii]nterfaces/[^/]+$`
	NICID string `json:"nicID,omitempty"`

	// requestedIPCount is how many secondary IP addresses the node agent wants
	// on the NIC: the IPs its pods hold plus a warm buffer for pods about to
	// start. The operator grants at most the per-VM limit and what the VNet's
	// quota allows; status.conditions says when it grants less.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=250
	RequestedIPCount int32 `json:"requestedIPCount,omitempty"`

	// ipsNotInUse lists IPs of status.ips that the node agent has stopped
	// handing out and promises never to hand out again. The operator removes
	// only these from the NIC, then drops them from status.ips; the agent then
	// drops them from this list. An IP held by a pod is never listed here.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=250
	// +kubebuilder:validation:XValidation:rule="self.all(x, self.exists_one(y, y == x))",message="must not contain duplicate IPs"
	IPsNotInUse []IPv4Address `json:"ipsNotInUse,omitempty"`

	// attachments are the Azure attachments (application security groups,
	// load balancer backend pools, a public IP) that the pods holding pool
	// IPs ask for on their IPs' configurations, one entry per IP, written by
	// the node agent from the pods' network.nicpool.io annotations. The
	// operator applies them in the same NIC write that adds and removes IPs
	// and reports each in status.attachments. An entry asking for nothing
	// asks to detach everything; the agent hands that IP to no other pod
	// until status.attachments shows it clean.
	// +optional
	// +listType=map
	// +listMapKey=ip
	// +kubebuilder:validation:MaxItems=250
	Attachments []IPAttachment `json:"attachments,omitempty"`
}

// PoolIP is one secondary IP configuration of the NIC that belongs to the pool.
type PoolIP struct {
	// ip is the private IPv4 address Azure assigned to the IP configuration.
	IP IPv4Address `json:"ip"`

	// ipConfiguration is the name of the NIC's IP configuration that carries ip.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	IPConfiguration string `json:"ipConfiguration"`
}

// SubnetServiceEndpoint is one VNet service endpoint of the pool's subnet.
type SubnetServiceEndpoint struct {
	// service is the Azure service, for example Microsoft.Storage.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9.]*$`
	Service string `json:"service"`

	// locations are the regions the endpoint covers ("*" for all).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	Locations []string `json:"locations,omitempty"`
}

// NodeIPPoolStatus is the observed state of the pool. Only the operator
// writes it.
type NodeIPPoolStatus struct {
	// observedGeneration is the metadata.generation of the spec that the
	// operator last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// nicID is the ARM resource ID of the NIC the pool lives on.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	NICID string `json:"nicID,omitempty"`

	// nicName is the last segment of nicID, for display.
	// +optional
	NICName string `json:"nicName,omitempty"`

	// subnetID is the ARM resource ID of the subnet of the NIC's primary IP
	// configuration; every pool IP comes from this subnet.
	// +optional
	SubnetID string `json:"subnetID,omitempty"`

	// subnetCIDR is the address prefix of that subnet, for example 10.240.0.0/16.
	// +optional
	SubnetCIDR IPv4CIDR `json:"subnetCIDR,omitempty"`

	// vnetID is the ARM resource ID of the virtual network of that subnet.
	// +optional
	VNetID string `json:"vnetID,omitempty"`

	// vnetAddressSpace lists the address prefixes of the virtual network. Pod
	// traffic to these is never masqueraded.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	VNetAddressSpace []IPv4CIDR `json:"vnetAddressSpace,omitempty"`

	// subnetServiceEndpoints are the VNet service endpoints enabled on the
	// subnet (for example Microsoft.Storage), as ARM reported them on the
	// operator's last pass for the pool. The operator checks the subnets
	// every minute (through a subnet read cached for 30 seconds) and passes
	// again over pools whose endpoints changed. The node agent sends pod traffic to the
	// prefixes it is configured with for these services
	// (--service-endpoint-prefixes) without SNAT, so the service sees the
	// pod's own VNet address. Enabling an endpoint is the network
	// administrator's job; the operator only reads it.
	// +optional
	// +listType=map
	// +listMapKey=service
	// +kubebuilder:validation:MaxItems=32
	SubnetServiceEndpoints []SubnetServiceEndpoint `json:"subnetServiceEndpoints,omitempty"`

	// primaryIP is the private IP of the NIC's primary IP configuration, the
	// node's own address; pod traffic leaving the VNet is masqueraded to it.
	// +optional
	PrimaryIP IPv4Address `json:"primaryIP,omitempty"`

	// ips are the secondary IP configurations nicpool created on the NIC for
	// this pool. The fabric delivers traffic for each of them to the node, so
	// the node agent hands out only these.
	// +optional
	// +listType=map
	// +listMapKey=ip
	// +kubebuilder:validation:MaxItems=256
	IPs []PoolIP `json:"ips,omitempty"`

	// allocatedIPCount is the number of entries in ips.
	// +optional
	AllocatedIPCount int32 `json:"allocatedIPCount,omitempty"`

	// fairShareIPCount is set while the VNet's quota binds this pool: the
	// pool's max-min fair share of the VNet limit, the most IPs the operator
	// lets it hold. Pools that want less than an equal split keep what they
	// want; the rest share the remainder equally. The operator never takes an
	// IP from the NIC on its own: when the pool holds more than this, the
	// node agent gives back free IPs down to it (IPs held by pods stay), so
	// the quota can reach pools below their share. The agent keeps asking
	// for its full demand in spec.requestedIPCount: shares are computed from
	// it. Absent, nothing but the per-VM limit caps the pool.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FairShareIPCount *int32 `json:"fairShareIPCount,omitempty"`

	// attachments report, per pool IP, the Azure attachments its IP
	// configuration carries on the NIC and how the operator answered
	// spec.attachments: Applied, Pending, Refused (with a reason) or
	// Detaching. An IP without an entry carries none.
	// +optional
	// +listType=map
	// +listMapKey=ip
	// +kubebuilder:validation:MaxItems=256
	Attachments []IPAttachmentStatus `json:"attachments,omitempty"`

	// attachmentsObservedGeneration is the metadata.generation of the spec
	// whose attachments status.attachments answers, read from the NIC after
	// the operator's write. An IP whose spec entry asks for nothing is clean
	// once this reaches the pool's generation and status.attachments has no
	// entry for it.
	// +optional
	AttachmentsObservedGeneration int64 `json:"attachmentsObservedGeneration,omitempty"`

	// conditions describe the pool: Ready, LimitReached (reasons PerVMLimit,
	// VNetLimit, SubnetFull), Throttled, NICNotFound, Degraded and, while
	// spec.attachments asks for something, AttachmentsApplied (reasons
	// Applied, Pending, Refused).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// NodeIPPool is the pool of Azure VNet IP addresses of one node: secondary IP
// configurations on the node's VM NIC that its pods get as their addresses.
// There is one per node, with the node's name; the operator creates it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=nip,categories=nicpool
// +kubebuilder:printcolumn:name="NIC",type=string,JSONPath=`.status.nicName`
// +kubebuilder:printcolumn:name="Primary IP",type=string,JSONPath=`.status.primaryIP`,priority=1
// +kubebuilder:printcolumn:name="Requested",type=integer,JSONPath=`.spec.requestedIPCount`
// +kubebuilder:printcolumn:name="Allocated",type=integer,JSONPath=`.status.allocatedIPCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.ips) || size(oldSelf.status.ips) == 0 || !has(self.spec) || !has(self.spec.nicID) || size(self.spec.nicID) == 0 || (has(oldSelf.spec) && has(oldSelf.spec.nicID) && self.spec.nicID == oldSelf.spec.nicID) || (has(oldSelf.status.nicID) && self.spec.nicID.lowerAscii() == oldSelf.status.nicID.lowerAscii())",message="spec.nicID cannot move the pool to another NIC while it holds IPs (status.ips): pods use them on its current NIC; change it once status.ips is empty, or delete the Node and its pool first",fieldPath=".spec.nicID",reason=FieldValueForbidden
type NodeIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the pool.
	// +optional
	Spec NodeIPPoolSpec `json:"spec,omitempty"`

	// status is the state of the pool as the operator last observed it on the NIC.
	// +optional
	Status NodeIPPoolStatus `json:"status,omitempty"`
}

// NodeIPPoolList is a list of NodeIPPools.
// +kubebuilder:object:root=true
type NodeIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the pools.
	Items []NodeIPPool `json:"items"`
}

// addKnownTypes registers the kinds of this package, and the meta types every
// group version serves, with s.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &NodeIPPool{}, &NodeIPPoolList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
