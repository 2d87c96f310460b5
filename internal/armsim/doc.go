// Package armsim is an ARM REST emulator for the Microsoft.Network resources nicpool
// touches (virtual networks, subnets, network interfaces), served over HTTPS on loopback
// with a CA generated at start, so that the real armnetwork client and the azcore pipeline
// (bearer tokens, retries, LRO pollers, etags) run against it unchanged.
//
// Routes (case-insensitive, api-version required but any value accepted, any bearer token):
//
//	GET    /subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/networkInterfaces[?$skiptoken=N]
//	GET    /subscriptions/S/providers/Microsoft.Network/networkInterfaces[?$skiptoken=N]
//	GET|PUT|DELETE .../resourceGroups/RG/providers/Microsoft.Network/networkInterfaces/NAME
//	GET    .../resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/NAME[/subnets/NAME]
//	PUT    .../resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/NAME/subnets/NAME
//	GET|PUT|DELETE .../resourceGroups/RG/providers/Microsoft.Network/{applicationSecurityGroups,
//	       networkSecurityGroups,routeTables,publicIPAddresses,loadBalancers}/NAME
//	GET    /subscriptions/S/providers/Microsoft.Network/locations/L/operations/ID  (Azure-AsyncOperation)
//
// Attachments, as Azure: an IP configuration references applicationSecurityGroups,
// loadBalancerBackendAddressPools and a publicIPAddress by ID; a NIC and a subnet
// reference a networkSecurityGroup, a subnet a routeTable. Every reference must name an
// existing resource in the NIC's region (400 InvalidResourceReference); all IP
// configurations of a NIC carry the same set of ASGs (400
// AllIpConfigurationsOnANicMustBelongToTheSameApplicationSecurityGroups); an ASG's
// members are all in one VNet; a public IP belongs to at most one IP configuration or
// load balancer frontend (400 PublicIPAddressInUse). Resources in use cannot be deleted
// (InUseNetworkSecurityGroupCannotBeDeleted, InUseRouteTableCannotBeDeleted,
// PublicIPAddressCannotBeDeleted, ...). NSGs carry Azure's six default rules. Public IPs
// are Standard and Static, allocated from Topology.PublicIPRange. A subnet PUT sets its
// serviceEndpoints ([{service, locations}], locations defaulting to the region): a known
// service (Microsoft.Storage, Microsoft.Sql, ...) at most once, else 400
// InvalidServiceNameOnServiceEndpoint or DuplicateServiceEndpointOnSubnet; a PUT without
// them removes them, as a PUT replaces the subnet. Snapshot.Network
// exposes all of it to the testbed's fabric, which enforces it.
//
// Semantics, as Azure: a NIC PUT allocates addresses at once (Dynamic: lowest free address
// of the subnet; Static: must be free and usable; the first four and the last address of a
// subnet are reserved; addresses are unique across the VNet) and answers 201 (create) or
// 200 (update) with provisioningState Updating and an Azure-AsyncOperation header; the
// operation succeeds after Options.PutLatency. The etag changes when a PUT is accepted and
// again when it completes. If-Match mismatch gives 412 PreconditionFailed; a PUT or DELETE
// while a PUT is in flight gives 409 AnotherOperationInProgress; a full subnet gives 400
// SubnetIsFull; more than MaxIPConfigsPerNIC configurations give 400
// CodeTooManyIPConfigurations; removing or replacing the primary configuration gives 400
// CodePrimaryIPConfigRequired. properties.virtualMachine is read-only and never changes.
// Reads and writes spend per-subscription token buckets (429 SubscriptionRequestsThrottled
// with Retry-After in seconds). While a PUT's operation runs, a GET shows the NIC (and its
// new IP configurations) in provisioningState Updating, addresses already allocated.
//
// Fault injection (Server methods): SetLatency delays an Op; FailNext answers the next n
// calls of an Op with an error status and code; HangLRO keeps PUT operations InProgress;
// FailNextOperations makes the next n accepted PUTs end Failed, leaving the NIC in
// provisioningState Failed until a later PUT succeeds.
//
// Departures from Azure, on purpose: in-progress LRO responses also carry retry-after-ms
// (azcore honours it before Retry-After) so pollers do not sleep whole seconds; DELETE is
// synchronous and allowed on a NIC attached to a VM, so tests can make a NIC vanish; only
// IPv4 is supported; a PUT that names no primary keeps the current primary; PUTs and
// DELETEs of the resources other than NICs complete synchronously (200/201, Succeeded),
// which the SDK's pollers accept; subnets can only be updated (associations), not created.
package armsim
