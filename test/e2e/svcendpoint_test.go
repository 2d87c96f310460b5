package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// svcEndpointAgentArgs configures the agents with the storage site's prefix as the
// Microsoft.Storage service's (the Storage.<Region> service tag in Azure).
var svcEndpointAgentArgs = []string{"--service-endpoint-prefixes=" + armsim.ServiceStorage + "=" + testbed.StorageCIDR}

// newServiceEndpointTestbed starts nicpool on two nodes: vm-0 in subnet "nodes" with the
// Microsoft.Storage service endpoint, vm-1 in subnet "nodes-b" without it, and a storage
// account whose firewall has virtual network rules for both subnets (the one for
// nodes-b waits for its endpoint, as a rule added with ignoreMissingVnetServiceEndpoint).
func newServiceEndpointTestbed(t *testing.T) *testbed.Testbed {
	t.Helper()
	return newTestbedWith(t, testbed.Config{
		VMs: 2, OtherSubnetVMs: 1, PutLatency: 100 * time.Millisecond, AgentArgs: svcEndpointAgentArgs,
		Storage: &testbed.StorageConfig{VirtualNetworkRules: []string{"nodes", testbed.OtherSubnetName}},
		Topology: func(topo *armsim.Topology) {
			topo.VNets[0].Subnets[0].ServiceEndpoints = []string{armsim.ServiceStorage}
		},
	})
}

// setStorageEndpoint enables or disables Microsoft.Storage on a subnet of vnet-e2e as
// the network administrator does, then waits until the pools of vms show the change
// (the operator's pass takes well under a second on an idle machine, its subnet read
// is cached for 30 s: azureWait covers both on a loaded one) and the fabric enforces it.
func setStorageEndpoint(t *testing.T, ctx context.Context, tb *testbed.Testbed, subnet string, on bool, vms ...*testbed.VM) {
	t.Helper()
	if err := tb.SetServiceEndpoint(ctx, subnet, armsim.ServiceStorage, on); err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		waitPoolEndpoint(t, ctx, tb, vm, on)
	}
	if err := tb.WaitFabric(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitPoolEndpoint(t *testing.T, ctx context.Context, tb *testbed.Testbed, vm *testbed.VM, on bool) {
	t.Helper()
	if err := tb.WaitPoolServiceEndpoint(ctx, vm, armsim.ServiceStorage, on, azureWait); err != nil {
		t.Fatal(err)
	}
}

// storageAllowed waits until n gets 200 from the storage endpoint seen as wantSeen.
func storageAllowed(t *testing.T, ctx context.Context, what string, n *testbed.Namespace, wantSeen string) {
	t.Helper()
	rep, err := testbed.StorageEventually(ctx, n, azureWait, func(r testbed.StorageReply) bool { return r.Status == 200 && r.Seen == wantSeen })
	if err != nil {
		t.Fatalf("%s: want 200 seen as %s, got %+v: %v", what, wantSeen, rep, err)
	}
	t.Logf("%s: 200, storage saw %s", what, rep.Seen)
}

// storageRefused waits until n gets 403 AuthorizationFailure seen as wantSeen.
func storageRefused(t *testing.T, ctx context.Context, what string, n *testbed.Namespace, wantSeen string) {
	t.Helper()
	rep, err := testbed.StorageEventually(ctx, n, azureWait, func(r testbed.StorageReply) bool {
		return r.Status == 403 && r.ErrorCode == "AuthorizationFailure" && r.Seen == wantSeen
	})
	if err != nil {
		t.Fatalf("%s: want 403 AuthorizationFailure seen as %s, got %+v: %v", what, wantSeen, rep, err)
	}
	t.Logf("%s: 403 %s, storage saw %s", what, rep.ErrorCode, rep.Seen)
}

// TestServiceEndpoints proves VNet service endpoints with real traffic: a pod on a
// subnet with Microsoft.Storage reaches the storage account (whose firewall allows only
// virtual network rules) with its own pod IP, while a pod on a subnet without the
// endpoint leaves through default outbound SNAT and is refused (403
// AuthorizationFailure, the storage seeing the outbound address); enabling the endpoint
// on that subnet lets its pod in with its pod IP, and disabling it on the first subnet
// locks that pod out again (its agent stops exempting storage from SNAT: were it still
// to send its pod IP, the fabric would drop it rather than answer 403).
func TestServiceEndpoints(t *testing.T) {
	tb := newServiceEndpointTestbed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	vm0, vm1 := tb.VMs[0], tb.VMs[1]
	a := startPods(t, tb, vm0, "sea", 1, 1)[0]
	b := startPods(t, tb, vm1, "seb", 1, 1)[0]
	waitPoolEndpoint(t, ctx, tb, vm0, true)
	waitPoolEndpoint(t, ctx, tb, vm1, false)

	storageAllowed(t, ctx, "pod on nodes (endpoint) -> storage", a.NS, a.IP)
	storageAllowed(t, ctx, "vm-0 on nodes (endpoint) -> storage", vm0.NS, vm0.PrimaryIP)
	storageRefused(t, ctx, "pod on nodes-b (no endpoint) -> storage", b.NS, testbed.DefaultOutboundIP)
	storageRefused(t, ctx, "vm-1 on nodes-b (no endpoint) -> storage", vm1.NS, testbed.DefaultOutboundIP)
	// The internet is not a VNet rule either.
	storageRefused(t, ctx, "internet -> storage", tb.Sites["internet"].NS, tb.Sites["internet"].HostIP)

	setStorageEndpoint(t, ctx, tb, testbed.OtherSubnetName, true, vm1)
	storageAllowed(t, ctx, "pod on nodes-b after enabling its endpoint -> storage", b.NS, b.IP)

	setStorageEndpoint(t, ctx, tb, "nodes", false, vm0)
	storageRefused(t, ctx, "pod on nodes after disabling its endpoint -> storage", a.NS, testbed.DefaultOutboundIP)

	pods := []*testbed.Pod{a, b}
	if err := tb.CheckInvariants(pods, 250); err != nil {
		t.Error(err)
	}
	if err := tb.FabricError(); err != nil {
		t.Errorf("fabric: %v", err)
	}
}
