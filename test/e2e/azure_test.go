package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/coreos/go-iptables/iptables"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// Waits in these tests are bounds, not pacing: the fabric follows armsim within
// milliseconds on an idle machine; 60 s covers a loaded CI machine.
const azureWait = 60 * time.Second

// azureEnv is a testbed without nicpool (the VNet layer only) and the SDK clients that
// change armsim, as an administrator or the operator would.
type azureEnv struct {
	tb   *testbed.Testbed
	arm  *armnetwork.ClientFactory
	ctx  context.Context
	rgID string
}

func newAzureEnv(t *testing.T) *azureEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	tb, err := testbed.New(ctx, testbed.Config{
		VMs: 3, Appliances: 1, BinDir: binDir, WorkDir: t.TempDir(), Logf: t.Logf,
		// No operator or agents: these tests exercise the simulated Azure at VM
		// level, and nicpool's own NIC writes would race theirs.
		ExternalNodes: true,
	})
	if err != nil {
		t.Fatalf("start testbed: %v", err)
	}
	t.Cleanup(tb.Close)
	f, err := tb.ARM()
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.StartProbeServers(ctx); err != nil {
		t.Fatal(err)
	}
	return &azureEnv{tb: tb, arm: f, ctx: ctx,
		rgID: "/subscriptions/" + testbed.SubscriptionID + "/resourceGroups/" + testbed.ResourceGroup + "/providers/Microsoft.Network/"}
}

var fastPoll = &runtime.PollUntilDoneOptions{Frequency: 20 * time.Millisecond}

// editPrimary changes a VM's primary IP configuration through the SDK and waits until
// the fabric enforces the result.
func (e *azureEnv) editPrimary(t *testing.T, vm *testbed.VM, edit func(*armnetwork.InterfaceIPConfigurationPropertiesFormat)) {
	t.Helper()
	nics := e.arm.NewInterfacesClient()
	got, err := nics.Get(e.ctx, testbed.ResourceGroup, vm.Name+"-nic", nil)
	if err != nil {
		t.Fatal(err)
	}
	edit(got.Properties.IPConfigurations[0].Properties)
	p, err := nics.BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, vm.Name+"-nic", got.Interface, nil)
	if err == nil {
		_, err = p.PollUntilDone(e.ctx, fastPoll)
	}
	if err != nil {
		t.Fatalf("update nic of %s: %v", vm.Name, err)
	}
	e.wait(t)
}

func (e *azureEnv) wait(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, azureWait)
	defer cancel()
	if err := e.tb.WaitFabric(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.tb.FabricError(); err != nil {
		t.Fatalf("fabric: %v", err)
	}
}

// setSubnet associates the nodes subnet with an NSG and a route table ("" for none).
func (e *azureEnv) setSubnet(t *testing.T, nsg, rt string) {
	t.Helper()
	c := e.arm.NewSubnetsClient()
	sn, err := c.Get(e.ctx, testbed.ResourceGroup, "vnet-e2e", "nodes", nil)
	if err != nil {
		t.Fatal(err)
	}
	sn.Properties.NetworkSecurityGroup, sn.Properties.RouteTable = nil, nil
	if nsg != "" {
		sn.Properties.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(e.rgID + "networkSecurityGroups/" + nsg)}
	}
	if rt != "" {
		sn.Properties.RouteTable = &armnetwork.RouteTable{ID: to.Ptr(e.rgID + "routeTables/" + rt)}
	}
	p, err := c.BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, "vnet-e2e", "nodes", sn.Subnet, nil)
	if err == nil {
		_, err = p.PollUntilDone(e.ctx, fastPoll)
	}
	if err != nil {
		t.Fatalf("associate subnet: %v", err)
	}
	e.wait(t)
}

// reach requires a connection from n to ip:port that sees wantSeen as its source
// (retried: an allowed path may need the fabric's last change); blocked requires that
// one attempt fails, after the fabric enforced armsim's state.
func (e *azureEnv) reach(t *testing.T, what string, n *testbed.Namespace, ip string, port int, wantSeen string) {
	t.Helper()
	deadline := time.Now().Add(azureWait)
	for {
		seen, err := testbed.ProbeAt(e.ctx, n, ip, port)
		if err == nil && seen == wantSeen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: saw %q, err %v; want a connection seen from %s", what, seen, err, wantSeen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *azureEnv) blocked(t *testing.T, what string, n *testbed.Namespace, ip string, port int) {
	t.Helper()
	if seen, err := testbed.ProbeAt(e.ctx, n, ip, port); err == nil {
		t.Fatalf("%s: connected (server saw %s), want it blocked", what, seen)
	}
}

func (e *azureEnv) putNSG(t *testing.T, name string, rules ...*armnetwork.SecurityRule) {
	t.Helper()
	p, err := e.arm.NewSecurityGroupsClient().BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, name, armnetwork.SecurityGroup{
		Location: to.Ptr("westeurope"), Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: rules}}, nil)
	if err == nil {
		_, err = p.PollUntilDone(e.ctx, fastPoll)
	}
	if err != nil {
		t.Fatalf("put nsg %s: %v", name, err)
	}
	e.wait(t)
}

// TestSimulatedAzureNSG proves the fabric enforces armsim's NSGs at VM level: rules by
// priority, port and ASG membership, Azure's default rules (VirtualNetwork including the
// peered VNet and on-premises), outbound rules, and statefulness.
func TestSimulatedAzureNSG(t *testing.T) {
	e := newAzureEnv(t)
	vm0, vm1 := e.tb.VMs[0], e.tb.VMs[1]
	onprem, peer := e.tb.Sites["onprem"], e.tb.Sites["peer"]
	if err := e.tb.StartServer(e.ctx, vm0.NS, 7778, func(_, remote string) string { return remote }); err != nil {
		t.Fatal(err)
	}
	e.reach(t, "on-premises to vm-1 before any NSG", onprem.NS, vm1.PrimaryIP, testbed.ProbePort, onprem.HostIP)

	if _, err := e.arm.NewApplicationSecurityGroupsClient().BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, "web",
		armnetwork.ApplicationSecurityGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	web := e.rgID + "applicationSecurityGroups/web"
	e.editPrimary(t, vm0, func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
		p.ApplicationSecurityGroups = []*armnetwork.ApplicationSecurityGroup{{ID: to.Ptr(web)}}
	})
	allowWeb := testbed.SecurityRule("allow-web", 100, "Inbound", "Allow", "Tcp", testbed.OnPremCIDR, "", fmt.Sprint(testbed.ProbePort), web)
	denyOnprem := testbed.SecurityRule("deny-onprem", 200, "Inbound", "Deny", "*", testbed.OnPremCIDR, "*", "*", "")
	denyPeerOut := testbed.SecurityRule("deny-peer-out", 100, "Outbound", "Deny", "*", "*", testbed.PeerCIDR, "*", "")
	e.putNSG(t, "nsg-nodes", allowWeb, denyOnprem, denyPeerOut)
	e.setSubnet(t, "nsg-nodes", "")

	e.reach(t, "on-premises to a VM in ASG web on its port (priority 100 allows)", onprem.NS, vm0.PrimaryIP, testbed.ProbePort, onprem.HostIP)
	e.blocked(t, "on-premises to a VM outside ASG web (priority 200 denies)", onprem.NS, vm1.PrimaryIP, testbed.ProbePort)
	e.blocked(t, "on-premises to the web VM on another port", onprem.NS, vm0.PrimaryIP, 7778)
	e.reach(t, "VM to VM (AllowVnetInBound)", vm1.NS, vm0.PrimaryIP, 7778, vm1.PrimaryIP)
	e.reach(t, "peered VNet to VM, replies allowed although outbound to the peer is denied (stateful)", peer.NS, vm1.PrimaryIP, testbed.ProbePort, peer.HostIP)
	e.blocked(t, "VM to peered VNet (outbound deny)", vm1.NS, peer.HostIP, testbed.ProbePort)

	// The same rules with the allow below the deny: priority decides.
	allowWeb.Properties.Priority = to.Ptr[int32](300)
	e.putNSG(t, "nsg-nodes", allowWeb, denyOnprem, denyPeerOut)
	e.blocked(t, "on-premises to the web VM once the deny has the lower priority number", onprem.NS, vm0.PrimaryIP, testbed.ProbePort)

	// On the NIC instead of the subnet: the NIC's NSG applies to that VM only.
	e.setSubnet(t, "", "")
	e.reach(t, "on-premises to vm-1 with no NSG", onprem.NS, vm1.PrimaryIP, testbed.ProbePort, onprem.HostIP)
	nics := e.arm.NewInterfacesClient()
	nic, err := nics.Get(e.ctx, testbed.ResourceGroup, vm1.Name+"-nic", nil)
	if err != nil {
		t.Fatal(err)
	}
	nic.Properties.NetworkSecurityGroup = &armnetwork.SecurityGroup{ID: to.Ptr(e.rgID + "networkSecurityGroups/nsg-nodes")}
	if p, err := nics.BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, vm1.Name+"-nic", nic.Interface, nil); err != nil {
		t.Fatal(err)
	} else if _, err := p.PollUntilDone(e.ctx, fastPoll); err != nil {
		t.Fatal(err)
	}
	e.wait(t)
	e.blocked(t, "on-premises to vm-1 with the NSG on its NIC", onprem.NS, vm1.PrimaryIP, testbed.ProbePort)
	e.reach(t, "on-premises to vm-0, whose NIC has no NSG", onprem.NS, vm0.PrimaryIP, 7778, onprem.HostIP)
}

// TestSimulatedAzureUDR proves user-defined routes on the subnet: next hop None
// black-holes a prefix, VirtualAppliance sends it through the appliance VM.
func TestSimulatedAzureUDR(t *testing.T) {
	e := newAzureEnv(t)
	vm0, nva := e.tb.VMs[0], e.tb.Appliances[0]
	onprem, peer := e.tb.Sites["onprem"], e.tb.Sites["peer"]
	e.reach(t, "VM to on-premises before any route table", vm0.NS, onprem.HostIP, testbed.ProbePort, vm0.PrimaryIP)
	route := func(name, prefix string, hop armnetwork.RouteNextHopType, ip string) *armnetwork.Route {
		r := &armnetwork.Route{Name: to.Ptr(name), Properties: &armnetwork.RoutePropertiesFormat{AddressPrefix: to.Ptr(prefix), NextHopType: to.Ptr(hop)}}
		if ip != "" {
			r.Properties.NextHopIPAddress = to.Ptr(ip)
		}
		return r
	}
	putRT := func(routes ...*armnetwork.Route) {
		t.Helper()
		p, err := e.arm.NewRouteTablesClient().BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, "rt-nodes", armnetwork.RouteTable{
			Location: to.Ptr("westeurope"), Properties: &armnetwork.RouteTablePropertiesFormat{Routes: routes}}, nil)
		if err == nil {
			_, err = p.PollUntilDone(e.ctx, fastPoll)
		}
		if err != nil {
			t.Fatal(err)
		}
		e.wait(t)
	}
	putRT(route("sink", testbed.OnPremCIDR, armnetwork.RouteNextHopTypeNone, ""))
	e.setSubnet(t, "", "rt-nodes")
	e.blocked(t, "VM to on-premises with next hop None", vm0.NS, onprem.HostIP, testbed.ProbePort)
	e.reach(t, "VM to the peered VNet (no user route)", vm0.NS, peer.HostIP, testbed.ProbePort, vm0.PrimaryIP)

	// Count what the appliance forwards towards the peered VNet.
	count := []string{"-s", vm0.PrimaryIP, "-d", peer.HostIP, "-j", "ACCEPT"}
	if err := nva.Do(func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		return ipt.Append("filter", "FORWARD", count...)
	}); err != nil {
		t.Fatal(err)
	}
	putRT(route("sink", testbed.OnPremCIDR, armnetwork.RouteNextHopTypeNone, ""),
		route("via-nva", testbed.PeerCIDR, armnetwork.RouteNextHopTypeVirtualAppliance, nva.PrimaryIP))
	e.reach(t, "VM to the peered VNet through the appliance (source kept)", vm0.NS, peer.HostIP, testbed.ProbePort, vm0.PrimaryIP)
	if n := forwarded(t, nva, count); n == 0 {
		t.Fatal("the appliance forwarded no packet of the VM's connection to the peered VNet")
	}
	// Without the appliance forwarding, the path fails: it really goes through it.
	if err := nva.Do(func() error { return writeSysctlIn("net/ipv4/ip_forward", "0") }); err != nil {
		t.Fatal(err)
	}
	e.blocked(t, "VM to the peered VNet with the appliance not forwarding", vm0.NS, peer.HostIP, testbed.ProbePort)
}

// forwarded returns the packet count of the appliance's FORWARD rule spec.
func forwarded(t *testing.T, vm *testbed.VM, spec []string) int {
	t.Helper()
	var packets int
	err := vm.Do(func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		stats, err := ipt.StructuredStats("filter", "FORWARD")
		if err != nil {
			return err
		}
		for _, s := range stats {
			if s.Source != nil && s.Source.IP.String() == spec[1] && s.Destination != nil && s.Destination.IP.String() == spec[3] {
				packets += int(s.Packets)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return packets
}

// writeSysctlIn sets a sysctl of the calling thread's network namespace.
func writeSysctlIn(name, value string) error {
	return os.WriteFile("/proc/sys/"+name, []byte(value), 0o644)
}

// TestSimulatedAzureLoadBalancer proves an internal load balancer spreads new flows over
// the healthy backends of its pool, skips one failing its probe, keeps the client's
// address, and stops sending to a backend once its probe fails.
func TestSimulatedAzureLoadBalancer(t *testing.T) {
	e := newAzureEnv(t)
	onprem := e.tb.Sites["onprem"]
	const frontend, fePort, bePort, healthPort = "10.240.1.100", 80, 7781, 7780
	lbID := e.rgID + "loadBalancers/lb-int"
	lb := testbed.InternalLB(testbed.InternalLBSpec{RG: e.rgID, ID: lbID, Frontend: frontend, Pool: "web", Probe: "health", Rule: "web",
		FrontendPort: fePort, BackendPort: bePort, ProbePort: healthPort})
	if _, err := e.arm.NewLoadBalancersClient().BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, "lb-int", lb, nil); err != nil {
		t.Fatal(err)
	}
	health := map[string]net.Listener{}
	for i, vm := range e.tb.VMs {
		if err := e.tb.StartServer(e.ctx, vm.NS, bePort, func(local, remote string) string { return local + " " + remote }); err != nil {
			t.Fatal(err)
		}
		if i < 2 { // vm-2 fails the probe: nothing listens on its health port
			l, err := e.tb.Listen(e.ctx, vm.NS, healthPort)
			if err != nil {
				t.Fatal(err)
			}
			go acceptAndClose(l)
			health[vm.PrimaryIP] = l
		}
		e.editPrimary(t, vm, func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
			p.LoadBalancerBackendAddressPools = []*armnetwork.BackendAddressPool{{ID: to.Ptr(lbID + "/backendAddressPools/web")}}
		})
	}
	waitBackend := func(ip string, healthy bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(e.ctx, azureWait)
		defer cancel()
		if err := e.tb.WaitLBBackend(ctx, "lb-int", ip, healthy); err != nil {
			t.Fatal(err)
		}
	}
	vm0, vm1, vm2 := e.tb.VMs[0].PrimaryIP, e.tb.VMs[1].PrimaryIP, e.tb.VMs[2].PrimaryIP
	waitBackend(vm0, true)
	waitBackend(vm1, true)
	waitBackend(vm2, false)
	spread := func(n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for i := 0; i < n; i++ {
			line, err := testbed.ProbeAt(e.ctx, onprem.NS, frontend, fePort)
			if err != nil {
				t.Fatalf("flow %d to the frontend: %v", i, err)
			}
			backend, client, _ := strings.Cut(line, " ")
			if client != onprem.HostIP {
				t.Fatalf("backend %s saw client %s, want %s (Azure's load balancer keeps the client address)", backend, client, onprem.HostIP)
			}
			got[backend]++
		}
		return got
	}
	// 40 flows over two backends: each gets at least one unless the spreading is broken
	// (chance 2^-39 otherwise).
	got := spread(40)
	if got[vm0] == 0 || got[vm1] == 0 || got[vm2] != 0 {
		t.Fatalf("flows per backend = %v, want some on %s and %s and none on %s (failing its probe)", got, vm0, vm1, vm2)
	}
	_ = health[vm0].Close()
	waitBackend(vm0, false)
	if got := spread(10); got[vm1] != 10 {
		t.Fatalf("flows per backend after %s failed its probe = %v, want all on %s", vm0, got, vm1)
	}
}

func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

// TestSimulatedAzurePublicIP proves a public IP on a VM's IP configuration: the internet
// reaches the private address through it (client address kept), and the VM's outbound
// connections reach the internet from it; a VM without one goes out from its own address.
func TestSimulatedAzurePublicIP(t *testing.T) {
	e := newAzureEnv(t)
	vm0, vm1 := e.tb.VMs[0], e.tb.VMs[1]
	inet := e.tb.Sites["internet"]
	pips := e.arm.NewPublicIPAddressesClient()
	p, err := pips.BeginCreateOrUpdate(e.ctx, testbed.ResourceGroup, "pip-vm1", armnetwork.PublicIPAddress{
		Location: to.Ptr("westeurope"), SKU: &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pip, err := p.PollUntilDone(e.ctx, fastPoll)
	if err != nil {
		t.Fatal(err)
	}
	public := *pip.Properties.IPAddress
	e.blocked(t, "internet to a public IP not yet associated", inet.NS, public, testbed.ProbePort)
	e.editPrimary(t, vm1, func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) {
		p.PublicIPAddress = &armnetwork.PublicIPAddress{ID: pip.ID}
	})
	e.reach(t, "internet to the VM's public IP", inet.NS, public, testbed.ProbePort, inet.HostIP)
	e.reach(t, "VM with a public IP to the internet", vm1.NS, inet.HostIP, testbed.ProbePort, public)
	e.reach(t, "VM without a public IP to the internet", vm0.NS, inet.HostIP, testbed.ProbePort, vm0.PrimaryIP)
	e.blocked(t, "internet to a VM's private address", inet.NS, vm1.PrimaryIP, testbed.ProbePort)
	e.editPrimary(t, vm1, func(p *armnetwork.InterfaceIPConfigurationPropertiesFormat) { p.PublicIPAddress = nil })
	e.blocked(t, "internet to the public IP once dissociated", inet.NS, public, testbed.ProbePort)
	e.reach(t, "the VM to the internet once dissociated", vm1.NS, inet.HostIP, testbed.ProbePort, vm1.PrimaryIP)
}

// TestAzureRowsWithPods runs the demo's simulated-Azure rows with nicpool running: a
// subnet NSG lets on-premises reach a pod whose node's NIC is in ASG web (its web
// annotation Applied) and denies a pod on another node (Refused); a route table with next hop None black-holes on-premises for a pod as for its VM, an
// internal load balancer over the VMs answers the peered VNet with the client's address,
// and a VM with a public IP is reached from and reaches the internet through it; and the
// pod attachment rows: pods in an internal load balancer's backend pool (20 new flows
// spread over the two passing its probes, none to a third failing them) and a pod with
// a public IP of its own, by annotation (as the demo shows them).
func TestAzureRowsWithPods(t *testing.T) {
	tb := newTestbed(t, 2, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := startPods(t, tb, tb.VMs[0], "a", 1, 1)[0]
	b := startPods(t, tb, tb.VMs[1], "b", 1, 1)[0]
	c := startPods(t, tb, tb.VMs[0], "c", 1, 1)[0]
	d := startPods(t, tb, tb.VMs[1], "d", 1, 1)[0] // no probe server: fails lb-pods' probes
	if err := tb.StartProbeServers(ctx, a, b, c); err != nil {
		t.Fatal(err)
	}
	check := func(results []testbed.PathResult) {
		t.Helper()
		t.Logf("\n%s", testbed.FormatMatrix(results))
		for _, r := range results {
			if !r.OK() {
				t.Errorf("%s from %s to %s: saw %q, err %v", r.Name, r.FromName, r.ToName, r.Seen, r.Err)
			}
		}
	}
	// The ASG rows first: the route table below black-holes on-premises.
	wctx, wcancel := context.WithTimeout(ctx, azureWait)
	defer wcancel()
	asg, err := tb.SetUpASGRows(wctx, b, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ASG requests: %s", asg.Describe())
	check(testbed.RunPaths(ctx, tb.ASGPaths(asg), azureWait))
	if err := tb.TearDownASGRows(wctx, asg); err != nil {
		t.Fatal(err)
	}
	setup, err := tb.SetUpAzureRows(ctx, tb.VMs, tb.VMs[1])
	if err != nil {
		t.Fatal(err)
	}
	podSetup, err := tb.SetUpPodRows(wctx, c, []*testbed.Pod{a, b}, d)
	if err != nil {
		t.Fatal(err)
	}
	check(testbed.RunPaths(ctx, append(tb.AzurePaths(setup, a), tb.PodPaths(podSetup)...), azureWait))
	spread := tb.PodSpread(ctx, podSetup, 20)
	t.Logf("%s", spread)
	if !spread.OK() {
		t.Errorf("lb-pods' spreading rule: %s", spread)
	}
	if err := tb.CheckInvariants([]*testbed.Pod{a, b, c, d}, 250); err != nil {
		t.Error(err)
	}
}
