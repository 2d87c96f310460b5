package armsim_test

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
)

// netEnv is an emulator with clients for every resource type it serves.
type netEnv struct {
	srv     *armsim.Server
	nics    *armnetwork.InterfacesClient
	asgs    *armnetwork.ApplicationSecurityGroupsClient
	nsgs    *armnetwork.SecurityGroupsClient
	rts     *armnetwork.RouteTablesClient
	pips    *armnetwork.PublicIPAddressesClient
	lbs     *armnetwork.LoadBalancersClient
	subnets *armnetwork.SubnetsClient
}

// netTopology has two VNets (the second for cross-VNet rules) and three VMs in vnet-0.
const netTopology = `
subscriptionId: ` + testSub + `
vnets:
  - {resourceGroup: rg-test, name: vnet-0, addressSpace: [10.240.0.0/16], connectedPrefixes: [192.168.50.0/24],
     subnets: [{name: nodes, cidr: 10.240.0.0/24, networkSecurityGroup: nsg-subnet, routeTable: rt-nodes}]}
  - {resourceGroup: rg-test, name: vnet-1, addressSpace: [10.250.0.0/16], subnets: [{name: nodes, cidr: 10.250.0.0/24}]}
applicationSecurityGroups: [{resourceGroup: rg-test, name: web}, {resourceGroup: rg-test, name: db}]
publicIPAddresses: [{resourceGroup: rg-test, name: pip-a}, {resourceGroup: rg-test, name: pip-lb}]
networkSecurityGroups:
  - resourceGroup: rg-test
    name: nsg-subnet
    rules:
      - {name: web-from-onprem, priority: 100, access: Allow, direction: Inbound, protocol: Tcp,
         sourceAddressPrefixes: [192.168.50.0/24], destinationPortRanges: ["8080"], destinationApplicationSecurityGroups: [web]}
      - {name: deny-onprem, priority: 200, access: Deny, direction: Inbound, protocol: "*", sourceAddressPrefixes: [192.168.50.0/24]}
routeTables:
  - {resourceGroup: rg-test, name: rt-nodes, routes: [{name: sink, addressPrefix: 10.99.0.0/16, nextHopType: None},
     {name: nva, addressPrefix: 10.98.0.0/16, nextHopType: VirtualAppliance, nextHopIpAddress: 10.240.0.6}]}
loadBalancers:
  - resourceGroup: rg-test
    name: lb-int
    frontends: [{name: fe, vnet: vnet-0, subnet: nodes, privateIP: 10.240.0.200}, {name: fe-pub, publicIP: pip-lb}]
    backendPools: [pool]
    probes: [{name: http, protocol: Http, port: 8080, requestPath: /healthz}]
    rules: [{name: web, frontend: fe, backendPool: pool, probe: http, protocol: Tcp, frontendPort: 80, backendPort: 8080}]
nics:
  - {resourceGroup: rg-test, name: vm-0-nic, vmName: vm-0, vnet: vnet-0, subnet: nodes, primaryIP: 10.240.0.4,
     applicationSecurityGroups: [web], loadBalancerBackendPools: [lb-int/pool], publicIP: pip-a}
  - {resourceGroup: rg-test, name: vm-1-nic, vmName: vm-1, vnet: vnet-0, subnet: nodes, primaryIP: 10.240.0.5}
  - {resourceGroup: rg-test, name: vm-2-nic, vmName: vm-2, vnet: vnet-1, subnet: nodes, primaryIP: 10.250.0.4}
`

func startNetEnv(t *testing.T) *netEnv {
	t.Helper()
	topo, err := armsim.ParseTopology([]byte(netTopology))
	if err != nil {
		t.Fatalf("parse topology: %v", err)
	}
	srv, co, cred := armsimtest.Start(t, armsim.Options{Topology: topo})
	f, err := armnetwork.NewClientFactory(testSub, cred, co)
	if err != nil {
		t.Fatalf("client factory: %v", err)
	}
	return &netEnv{srv: srv, nics: f.NewInterfacesClient(), asgs: f.NewApplicationSecurityGroupsClient(),
		nsgs: f.NewSecurityGroupsClient(), rts: f.NewRouteTablesClient(), pips: f.NewPublicIPAddressesClient(),
		lbs: f.NewLoadBalancersClient(), subnets: f.NewSubnetsClient()}
}

func rid(typ, name string) string {
	return "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Network/" + typ + "/" + name
}

// putNIC writes nic and waits for the operation to end.
func (e *netEnv) putNIC(ctx context.Context, name string, nic armnetwork.Interface) error {
	poller, err := e.nics.BeginCreateOrUpdate(ctx, testRG, name, nic, nil)
	if err != nil {
		return err
	}
	_, err = poller.PollUntilDone(ctx, fastPoll)
	return err
}

func (e *netEnv) getNIC(t *testing.T, ctx context.Context, name string) armnetwork.Interface {
	t.Helper()
	got, err := e.nics.Get(ctx, testRG, name, nil)
	if err != nil {
		t.Fatalf("get nic %s: %v", name, err)
	}
	return got.Interface
}

// TestTopologyAttachments checks that the topology's resources and associations are
// served over REST with Azure's shapes, and reach the Snapshot the fabric reads.
func TestTopologyAttachments(t *testing.T) {
	e := startNetEnv(t)
	ctx := ctxT(t)
	nic := e.getNIC(t, ctx, "vm-0-nic")
	p := nic.Properties.IPConfigurations[0].Properties
	if len(p.ApplicationSecurityGroups) != 1 || *p.ApplicationSecurityGroups[0].ID != rid("applicationSecurityGroups", "web") {
		t.Errorf("asgs = %v, want web", p.ApplicationSecurityGroups)
	}
	if len(p.LoadBalancerBackendAddressPools) != 1 || *p.LoadBalancerBackendAddressPools[0].ID != rid("loadBalancers", "lb-int")+"/backendAddressPools/pool" {
		t.Errorf("pools = %v", p.LoadBalancerBackendAddressPools)
	}
	if p.PublicIPAddress == nil || *p.PublicIPAddress.ID != rid("publicIPAddresses", "pip-a") {
		t.Errorf("public ip = %v", p.PublicIPAddress)
	}
	pip, err := e.pips.Get(ctx, testRG, "pip-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := netip.MustParseAddr(*pip.Properties.IPAddress); !netip.MustParsePrefix(armsim.DefaultPublicIPRange).Contains(a) {
		t.Errorf("public ip %s outside %s", a, armsim.DefaultPublicIPRange)
	}
	if pip.Properties.IPConfiguration == nil || *pip.Properties.IPConfiguration.ID != *nic.Properties.IPConfigurations[0].ID {
		t.Errorf("public ip's ipConfiguration = %v, want %s", pip.Properties.IPConfiguration, *nic.Properties.IPConfigurations[0].ID)
	}
	lb, err := e.lbs.Get(ctx, testRG, "lb-int", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := lb.Properties.BackendAddressPools[0].Properties.BackendIPConfigurations; len(got) != 1 {
		t.Errorf("backend ip configurations = %d, want 1", len(got))
	}
	g, err := e.nsgs.Get(ctx, testRG, "nsg-subnet", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Properties.SecurityRules) != 2 || len(g.Properties.DefaultSecurityRules) != 6 || len(g.Properties.Subnets) != 1 {
		t.Errorf("nsg has %d rules, %d default rules, %d subnets; want 2, 6, 1",
			len(g.Properties.SecurityRules), len(g.Properties.DefaultSecurityRules), len(g.Properties.Subnets))
	}
	snap := e.srv.Snapshot()
	net := snap.Network
	if len(net.LoadBalancers) != 1 || len(net.LoadBalancers[0].Pools["pool"]) != 1 || net.LoadBalancers[0].Pools["pool"][0] != netip.MustParseAddr("10.240.0.4") {
		t.Errorf("snapshot load balancers = %+v", net.LoadBalancers)
	}
	if fe := net.LoadBalancers[0].Frontends; len(fe) != 2 || fe[0].PrivateIP != netip.MustParseAddr("10.240.0.200") || !fe[1].PublicIP.IsValid() {
		t.Errorf("snapshot frontends = %+v", fe)
	}
	if rules := net.NSGs[strings.ToLower(rid("networkSecurityGroups", "nsg-subnet"))]; len(rules) != 8 || rules[0].Name != "web-from-onprem" {
		t.Errorf("snapshot nsg rules = %+v", rules)
	}
	var mapped bool
	for _, p := range net.PublicIPs {
		mapped = mapped || p.PrivateIP == netip.MustParseAddr("10.240.0.4")
	}
	if !mapped {
		t.Errorf("snapshot public ips %+v map none to 10.240.0.4", net.PublicIPs)
	}
}

// TestAttachmentErrors checks ARM's refusals for misused references, each with the
// status and code Azure answers.
func TestAttachmentErrors(t *testing.T) {
	e := startNetEnv(t)
	ctx := ctxT(t)
	if _, err := e.asgs.BeginCreateOrUpdate(ctx, testRG, "east", armnetwork.ApplicationSecurityGroup{Location: to.Ptr("eastus")}, nil); err != nil {
		t.Fatalf("create asg in eastus: %v", err)
	}
	withPrimary := func(name string, edit func(*armnetwork.InterfaceIPConfigurationPropertiesFormat)) armnetwork.Interface {
		nic := e.getNIC(t, ctx, name)
		edit(nic.Properties.IPConfigurations[0].Properties)
		return nic
	}
	asgRef := func(names ...string) []*armnetwork.ApplicationSecurityGroup {
		var out []*armnetwork.ApplicationSecurityGroup
		for _, n := range names {
			out = append(out, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(rid("applicationSecurityGroups", n))})
		}
		return out
	}
	cases := []struct {
		name, nic string
		edit      func(*armnetwork.InterfaceIPConfigurationPropertiesFormat)
		code      string
	}{
		{"missing asg", "vm-1-nic", func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.ApplicationSecurityGroups = asgRef("nope")
		}, armsim.CodeInvalidResourceReference},
		{"asg in another region", "vm-1-nic", func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.ApplicationSecurityGroups = asgRef("east")
		}, armsim.CodeInvalidResourceReference},
		{"asg with members in another vnet", "vm-2-nic", func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.ApplicationSecurityGroups = asgRef("web")
		}, armsim.CodeASGInDifferentVNet},
		{"public ip of another nic", "vm-1-nic", func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(rid("publicIPAddresses", "pip-a"))}
		}, armsim.CodePublicIPAddressInUse},
		{"public ip of a load balancer", "vm-1-nic", func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(rid("publicIPAddresses", "pip-lb"))}
		}, armsim.CodePublicIPAddressInUse},
		{"missing public ip", "vm-1-nic", func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(rid("publicIPAddresses", "nope"))}
		}, armsim.CodeInvalidResourceReference},
		{"missing backend pool", "vm-1-nic", func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.LoadBalancerBackendAddressPools = []*armnetwork.BackendAddressPool{{ID: to.Ptr(rid("loadBalancers", "lb-int") + "/backendAddressPools/nope")}}
		}, armsim.CodeInvalidResourceReference},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.getNIC(t, ctx, c.nic)
			err := e.putNIC(ctx, c.nic, withPrimary(c.nic, c.edit))
			if status, code := errCode(t, err); status != http.StatusBadRequest || code != c.code {
				t.Fatalf("got %d %s, want 400 %s", status, code, c.code)
			}
			if after := e.getNIC(t, ctx, c.nic); *after.Etag != *before.Etag {
				t.Errorf("a refused PUT changed the nic")
			}
		})
	}
	t.Run("asg sets differ between ip configurations", func(t *testing.T) {
		nic := e.getNIC(t, ctx, "vm-0-nic")
		addSecondaries(&nic, "pod", 1) // no ASG, while the primary is in "web"
		err := e.putNIC(ctx, "vm-0-nic", nic)
		if status, code := errCode(t, err); status != http.StatusBadRequest || code != armsim.CodeASGsDifferOnNIC {
			t.Fatalf("got %d %s, want 400 %s", status, code, armsim.CodeASGsDifferOnNIC)
		}
		nic.Properties.IPConfigurations[1].Properties.ApplicationSecurityGroups = asgRef("web")
		if err := e.putNIC(ctx, "vm-0-nic", nic); err != nil {
			t.Fatalf("same asgs on every configuration: %v", err)
		}
	})
}

// TestAttachDetachAndDeletes moves a public IP between NICs and checks that resources in
// use cannot be deleted until they are released.
func TestAttachDetachAndDeletes(t *testing.T) {
	e := startNetEnv(t)
	ctx := ctxT(t)
	// del keeps only the error of a Begin call: armsim deletes synchronously.
	del := func(_ any, err error) error { return err }
	_, err := e.pips.BeginDelete(ctx, testRG, "pip-a", nil)
	if status, code := errCode(t, err); status != http.StatusBadRequest || code != armsim.CodePublicIPAddressCannotBeDeleted {
		t.Fatalf("delete associated public ip: %d %s", status, code)
	}
	// Detach from vm-0, attach to vm-1.
	nic0 := e.getNIC(t, ctx, "vm-0-nic")
	nic0.Properties.IPConfigurations[0].Properties.PublicIPAddress = nil
	if err := e.putNIC(ctx, "vm-0-nic", nic0); err != nil {
		t.Fatalf("detach public ip: %v", err)
	}
	nic1 := e.getNIC(t, ctx, "vm-1-nic")
	nic1.Properties.IPConfigurations[0].Properties.PublicIPAddress = &armnetwork.PublicIPAddress{ID: to.Ptr(rid("publicIPAddresses", "pip-a"))}
	if err := e.putNIC(ctx, "vm-1-nic", nic1); err != nil {
		t.Fatalf("attach the freed public ip elsewhere: %v", err)
	}
	nic1.Properties.IPConfigurations[0].Properties.PublicIPAddress = nil
	if err := e.putNIC(ctx, "vm-1-nic", e.getNICWithout(t, ctx, "vm-1-nic")); err != nil {
		t.Fatalf("detach again: %v", err)
	}
	if err := del(e.pips.BeginDelete(ctx, testRG, "pip-a", nil)); err != nil {
		t.Fatalf("delete a free public ip: %v", err)
	}
	_, err = e.nsgs.BeginDelete(ctx, testRG, "nsg-subnet", nil)
	if status, code := errCode(t, err); status != http.StatusBadRequest || code != armsim.CodeInUseNSGCannotBeDeleted {
		t.Fatalf("delete nsg of a subnet: %d %s", status, code)
	}
	_, err = e.rts.BeginDelete(ctx, testRG, "rt-nodes", nil)
	if status, code := errCode(t, err); status != http.StatusBadRequest || code != armsim.CodeInUseRouteTableCannotBeDeleted {
		t.Fatalf("delete route table of a subnet: %d %s", status, code)
	}
	sn, err := e.subnets.Get(ctx, testRG, "vnet-0", "nodes", nil)
	if err != nil {
		t.Fatal(err)
	}
	sn.Properties.NetworkSecurityGroup, sn.Properties.RouteTable = nil, nil
	if p, err := e.subnets.BeginCreateOrUpdate(ctx, testRG, "vnet-0", "nodes", sn.Subnet, nil); err != nil {
		t.Fatalf("dissociate subnet: %v", err)
	} else if _, err := p.PollUntilDone(ctx, fastPoll); err != nil {
		t.Fatal(err)
	}
	if err := del(e.nsgs.BeginDelete(ctx, testRG, "nsg-subnet", nil)); err != nil {
		t.Fatalf("delete a dissociated nsg: %v", err)
	}
	// The load balancer's pool still holds vm-0's primary.
	lb, err := e.lbs.Get(ctx, testRG, "lb-int", nil)
	if err != nil {
		t.Fatal(err)
	}
	lb.Properties.BackendAddressPools, lb.Properties.LoadBalancingRules = nil, nil
	_, err = e.lbs.BeginCreateOrUpdate(ctx, testRG, "lb-int", lb.LoadBalancer, nil)
	if status, code := errCode(t, err); status != http.StatusBadRequest || code != armsim.CodeInUseBackendPoolCannotBeDeleted {
		t.Fatalf("remove a pool in use: %d %s", status, code)
	}
}

func (e *netEnv) getNICWithout(t *testing.T, ctx context.Context, name string) armnetwork.Interface {
	nic := e.getNIC(t, ctx, name)
	for _, c := range nic.Properties.IPConfigurations {
		c.Properties.PublicIPAddress = nil
	}
	return nic
}

// TestCreatePublicIPAndRules creates a public IP over REST ("create one") and checks
// the validation of security rules and routes.
func TestCreatePublicIPAndRules(t *testing.T) {
	e := startNetEnv(t)
	ctx := ctxT(t)
	p, err := e.pips.BeginCreateOrUpdate(ctx, testRG, "pip-new", armnetwork.PublicIPAddress{
		Location:   to.Ptr(armsim.DefaultLocation),
		SKU:        &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic)},
	}, nil)
	if err != nil {
		t.Fatalf("create public ip: %v", err)
	}
	res, err := p.PollUntilDone(ctx, fastPoll)
	if err != nil || res.Properties.IPAddress == nil {
		t.Fatalf("create public ip: %v (%+v)", err, res)
	}
	rule := func(prio int32, dir armnetwork.SecurityRuleDirection, port string) *armnetwork.SecurityRule {
		return &armnetwork.SecurityRule{Name: to.Ptr("r" + port + string(dir)), Properties: &armnetwork.SecurityRulePropertiesFormat{
			Priority: to.Ptr(prio), Access: to.Ptr(armnetwork.SecurityRuleAccessAllow), Direction: to.Ptr(dir),
			Protocol: to.Ptr(armnetwork.SecurityRuleProtocolTCP), SourcePortRange: to.Ptr("*"), DestinationPortRange: to.Ptr(port),
			SourceAddressPrefix: to.Ptr("Internet"), DestinationAddressPrefix: to.Ptr("*"),
		}}
	}
	cases := []struct {
		name  string
		rules []*armnetwork.SecurityRule
		code  string
	}{
		{"priority below 100", []*armnetwork.SecurityRule{rule(99, "Inbound", "80")}, armsim.CodeSecurityRuleInvalidPriority},
		{"same priority and direction", []*armnetwork.SecurityRule{rule(100, "Inbound", "80"), rule(100, "Inbound", "81")}, armsim.CodeSecurityRuleConflict},
		{"bad port range", []*armnetwork.SecurityRule{rule(100, "Inbound", "90-80")}, armsim.CodeSecurityRuleInvalidPortRange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.nsgs.BeginCreateOrUpdate(ctx, testRG, "nsg-x", armnetwork.SecurityGroup{Location: to.Ptr(armsim.DefaultLocation),
				Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: c.rules}}, nil)
			if status, code := errCode(t, err); status != http.StatusBadRequest || code != c.code {
				t.Fatalf("got %d %s, want 400 %s", status, code, c.code)
			}
		})
	}
	ok := []*armnetwork.SecurityRule{rule(100, "Inbound", "80"), rule(100, "Outbound", "80")}
	if _, err := e.nsgs.BeginCreateOrUpdate(ctx, testRG, "nsg-x", armnetwork.SecurityGroup{Location: to.Ptr(armsim.DefaultLocation),
		Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: ok}}, nil); err != nil {
		t.Fatalf("same priority in both directions is allowed: %v", err)
	}
	_, err = e.rts.BeginCreateOrUpdate(ctx, testRG, "rt-x", armnetwork.RouteTable{Location: to.Ptr(armsim.DefaultLocation),
		Properties: &armnetwork.RouteTablePropertiesFormat{Routes: []*armnetwork.Route{{Name: to.Ptr("nva"), Properties: &armnetwork.RoutePropertiesFormat{
			AddressPrefix: to.Ptr("10.0.0.0/8"), NextHopType: to.Ptr(armnetwork.RouteNextHopTypeVirtualAppliance)}}}}}, nil)
	if status, code := errCode(t, err); status != http.StatusBadRequest || code != armsim.CodeInvalidNextHopIP {
		t.Fatalf("virtual appliance route without next hop: %d %s", status, code)
	}
}
