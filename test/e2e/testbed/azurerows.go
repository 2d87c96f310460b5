package testbed

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Rows of the connectivity matrix that exercise the simulated Azure networking through
// the SDK, as an administrator would set it up: a route table with next hop None on the
// nodes' subnet (pods and VMs alike lose the prefix), an internal load balancer with the
// VMs' primary IP configurations in its pool, and a public IP on a VM.

// demoFrontend is the internal frontend of the demo's load balancer, in the nodes' subnet
// and far above the addresses nicpool hands out.
const demoFrontend = "10.240.255.200"

// azurePoll polls the testbed's own SDK calls at the SDK's minimum interval:
// PollUntilDone refuses anything shorter ("polling frequency minimum is one
// second") as soon as an operation is still running, which armsim's
// latency in the demo makes it.
var azurePoll = &runtime.PollUntilDoneOptions{Frequency: time.Second}

// AzureSetup is what SetUpAzureRows created.
type AzureSetup struct {
	// PublicIP is the address of the public IP given to the public-IP VM.
	PublicIP string
	pipVM    *VM
}

// SetUpAzureRows creates, through the SDK: route table "rt-demo" sending on-premises to
// None on the nodes' subnet; load balancer "lb-demo" with frontend demoFrontend:ProbePort
// spreading over the primary IP configurations of lbVMs (TCP probe on ProbePort); public
// IP "pip-demo" on pipVM's primary IP configuration. It waits until the fabric enforces
// all of it and the backends passed their probe. Probe servers must run on the VMs.
func (tb *Testbed) SetUpAzureRows(ctx context.Context, lbVMs []*VM, pipVM *VM) (*AzureSetup, error) {
	f, err := tb.ARM()
	if err != nil {
		return nil, err
	}
	rg := "/subscriptions/" + SubscriptionID + "/resourceGroups/" + ResourceGroup + "/providers/Microsoft.Network/"
	if err := tb.putRouteTable(ctx, f, "rt-demo", OnPremCIDR); err != nil {
		return nil, err
	}
	if err := tb.associateRouteTable(ctx, f, rg+"routeTables/rt-demo"); err != nil {
		return nil, err
	}
	lbID := rg + "loadBalancers/lb-demo"
	if _, err := f.NewLoadBalancersClient().BeginCreateOrUpdate(ctx, ResourceGroup, "lb-demo", demoLB(rg, lbID), nil); err != nil {
		return nil, fmt.Errorf("create load balancer: %w", err)
	}
	for _, vm := range lbVMs {
		err := tb.editPrimary(ctx, f, vm, func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.LoadBalancerBackendAddressPools = append(p.LoadBalancerBackendAddressPools, &armnetwork.BackendAddressPool{ID: to.Ptr(lbID + "/backendAddressPools/vms")})
		})
		if err != nil {
			return nil, err
		}
	}
	p, err := f.NewPublicIPAddressesClient().BeginCreateOrUpdate(ctx, ResourceGroup, "pip-demo", armnetwork.PublicIPAddress{
		Location:   to.Ptr(tb.Sim.Location()),
		SKU:        &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic)},
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("create public ip: %w", err)
	}
	pip, err := p.PollUntilDone(ctx, azurePoll)
	if err != nil {
		return nil, fmt.Errorf("create public ip: %w", err)
	}
	if err := tb.editPrimary(ctx, f, pipVM, func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
		p.PublicIPAddress = &armnetwork.PublicIPAddress{ID: pip.ID}
	}); err != nil {
		return nil, err
	}
	if err := tb.WaitFabric(ctx); err != nil {
		return nil, err
	}
	for _, vm := range lbVMs {
		if err := tb.WaitLBBackend(ctx, "lb-demo", vm.PrimaryIP, true); err != nil {
			return nil, err
		}
	}
	return &AzureSetup{PublicIP: *pip.Properties.IPAddress, pipVM: pipVM}, tb.FabricError()
}

// AzurePaths are the rows for a set-up: pod a and its VM lose on-premises (next hop
// None) but keep the peered VNet; the peered VNet reaches the internal load balancer's
// frontend with its own address kept; the internet reaches the public-IP VM through its
// public IP, and that VM reaches the internet as the public IP.
func (tb *Testbed) AzurePaths(s *AzureSetup, a *Pod) []Path {
	peer, onprem, inet := tb.Sites["peer"], tb.Sites["onprem"], tb.Sites["internet"]
	return []Path{
		{Name: "UDR None: pod to on-prem", From: a.NS, FromName: a.Name, To: onprem.HostIP, ToName: "on-prem", WantFail: true},
		{Name: "UDR None: VM to on-prem", From: a.VM.NS, FromName: a.VM.Name, To: onprem.HostIP, ToName: "on-prem", WantFail: true},
		{Name: "UDR: pod to peered VNet", From: a.NS, FromName: a.Name, To: peer.HostIP, ToName: "peer-vnet", WantSeen: a.IP},
		// From the peered VNet: replies to on-premises are black-holed by the route above.
		{Name: "peer VNet to internal LB", From: peer.NS, FromName: "peer-vnet", To: demoFrontend, ToName: "lb-demo", WantSeen: peer.HostIP},
		{Name: "internet to VM public IP", From: inet.NS, FromName: "internet", To: s.PublicIP, ToName: s.pipVM.Name, WantSeen: inet.HostIP},
		{Name: "VM with public IP to inet", From: s.pipVM.NS, FromName: s.pipVM.Name, To: inet.HostIP, ToName: "internet", WantSeen: s.PublicIP},
	}
}

func demoLB(rg, lbID string) armnetwork.LoadBalancer {
	return InternalLB(InternalLBSpec{RG: rg, ID: lbID, Frontend: demoFrontend, Pool: "vms", Probe: "tcp", Rule: "probe",
		FrontendPort: ProbePort, BackendPort: ProbePort, ProbePort: ProbePort})
}

// InternalLBSpec names an internal load balancer in the nodes' subnet with one
// backend pool, one TCP probe and one TCP rule.
type InternalLBSpec struct {
	RG, ID                               string // resource group ID prefix, the LB's ID
	Frontend                             string // static private frontend IP
	Pool, Probe, Rule                    string // names of the pool, probe and rule
	FrontendPort, BackendPort, ProbePort int32
}

// InternalLB is the load balancer spec describes, for the SDK's CreateOrUpdate.
func InternalLB(spec InternalLBSpec) armnetwork.LoadBalancer {
	return armnetwork.LoadBalancer{Location: to.Ptr("westeurope"), Properties: &armnetwork.LoadBalancerPropertiesFormat{
		FrontendIPConfigurations: []*armnetwork.FrontendIPConfiguration{{Name: to.Ptr("fe"), Properties: &armnetwork.FrontendIPConfigurationPropertiesFormat{
			Subnet:                    &armnetwork.Subnet{ID: to.Ptr(spec.RG + "virtualNetworks/vnet-e2e/subnets/nodes")},
			PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic), PrivateIPAddress: to.Ptr(spec.Frontend)}}},
		BackendAddressPools: []*armnetwork.BackendAddressPool{{Name: to.Ptr(spec.Pool)}},
		Probes: []*armnetwork.Probe{{Name: to.Ptr(spec.Probe), Properties: &armnetwork.ProbePropertiesFormat{
			Protocol: to.Ptr(armnetwork.ProbeProtocolTCP), Port: to.Ptr(spec.ProbePort)}}},
		LoadBalancingRules: []*armnetwork.LoadBalancingRule{{Name: to.Ptr(spec.Rule), Properties: &armnetwork.LoadBalancingRulePropertiesFormat{
			Protocol: to.Ptr(armnetwork.TransportProtocolTCP), FrontendPort: to.Ptr(spec.FrontendPort), BackendPort: to.Ptr(spec.BackendPort),
			FrontendIPConfiguration: &armnetwork.SubResource{ID: to.Ptr(spec.ID + "/frontendIPConfigurations/fe")},
			BackendAddressPool:      &armnetwork.SubResource{ID: to.Ptr(spec.ID + "/backendAddressPools/" + spec.Pool)},
			Probe:                   &armnetwork.SubResource{ID: to.Ptr(spec.ID + "/probes/" + spec.Probe)}}}},
	}}
}

func (tb *Testbed) putRouteTable(ctx context.Context, f *armnetwork.ClientFactory, name, nonePrefix string) error {
	p, err := f.NewRouteTablesClient().BeginCreateOrUpdate(ctx, ResourceGroup, name, armnetwork.RouteTable{
		Location: to.Ptr(tb.Sim.Location()),
		Properties: &armnetwork.RouteTablePropertiesFormat{Routes: []*armnetwork.Route{{Name: to.Ptr("blackhole"),
			Properties: &armnetwork.RoutePropertiesFormat{AddressPrefix: to.Ptr(nonePrefix), NextHopType: to.Ptr(armnetwork.RouteNextHopTypeNone)}}}},
	}, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, azurePoll)
	}
	if err != nil {
		return fmt.Errorf("create route table %s: %w", name, err)
	}
	return nil
}

func (tb *Testbed) associateRouteTable(ctx context.Context, f *armnetwork.ClientFactory, id string) error {
	c := f.NewSubnetsClient()
	sn, err := c.Get(ctx, ResourceGroup, "vnet-e2e", "nodes", nil)
	if err != nil {
		return fmt.Errorf("get subnet: %w", err)
	}
	sn.Properties.RouteTable = &armnetwork.RouteTable{ID: to.Ptr(id)}
	p, err := c.BeginCreateOrUpdate(ctx, ResourceGroup, "vnet-e2e", "nodes", sn.Subnet, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, azurePoll)
	}
	if err != nil {
		return fmt.Errorf("associate route table: %w", err)
	}
	return nil
}

// editPrimary edits the primary IP configuration of a VM's NIC (editNIC).
func (tb *Testbed) editPrimary(ctx context.Context, f *armnetwork.ClientFactory, vm *VM, edit func(*armnetwork.InterfaceIPConfigurationPropertiesFormat)) error {
	return tb.editNIC(ctx, f, vm, func(c *armnetwork.InterfaceIPConfiguration) {
		if c.Properties.Primary != nil && *c.Properties.Primary {
			edit(c.Properties)
		}
	})
}
