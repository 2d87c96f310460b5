package armsim_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
)

// putSubnet writes a subnet and waits for the (synchronous) operation.
func putSubnet(ctx context.Context, c *armnetwork.SubnetsClient, vnet, name string, sn armnetwork.Subnet) error {
	p, err := c.BeginCreateOrUpdate(ctx, testRG, vnet, name, sn, nil)
	if err != nil {
		return err
	}
	_, err = p.PollUntilDone(ctx, fastPoll)
	return err
}

func endpointOf(sn armnetwork.Subnet, service string) *armnetwork.ServiceEndpointPropertiesFormat {
	for _, e := range sn.Properties.ServiceEndpoints {
		if e != nil && e.Service != nil && *e.Service == service {
			return e
		}
	}
	return nil
}

func subnetState(t *testing.T, srv *armsim.Server, id string) armsim.SubnetState {
	t.Helper()
	for _, s := range srv.Snapshot().Network.Subnets {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("subnet %s not in the snapshot", id)
	return armsim.SubnetState{}
}

func TestSubnetServiceEndpoints(t *testing.T) {
	e := startNetEnv(t)
	ctx := ctxT(t)
	id := "/subscriptions/" + testSub + "/resourcegroups/rg-test/providers/microsoft.network/virtualnetworks/vnet-1/subnets/nodes"
	got, err := e.subnets.Get(ctx, testRG, "vnet-1", "nodes", nil)
	if err != nil {
		t.Fatalf("get subnet: %v", err)
	}
	if len(got.Properties.ServiceEndpoints) != 0 {
		t.Fatalf("a new subnet has service endpoints %v", got.Properties.ServiceEndpoints)
	}

	// Enable Microsoft.Storage (any case, no locations: the VNet's region) and Microsoft.Sql in two regions.
	got.Properties.ServiceEndpoints = []*armnetwork.ServiceEndpointPropertiesFormat{
		{Service: to.Ptr("microsoft.storage")},
		{Service: to.Ptr("Microsoft.Sql"), Locations: to.SliceOfPtrs("westeurope", "North Europe")},
	}
	if err := putSubnet(ctx, e.subnets, "vnet-1", "nodes", got.Subnet); err != nil {
		t.Fatalf("enable service endpoints: %v", err)
	}
	got, err = e.subnets.Get(ctx, testRG, "vnet-1", "nodes", nil)
	if err != nil {
		t.Fatal(err)
	}
	st := endpointOf(got.Subnet, armsim.ServiceStorage)
	if st == nil || len(st.Locations) != 1 || *st.Locations[0] != e.srv.Location() ||
		st.ProvisioningState == nil || *st.ProvisioningState != armnetwork.ProvisioningStateSucceeded {
		t.Fatalf("storage endpoint after PUT: %+v", st)
	}
	if sql := endpointOf(got.Subnet, "Microsoft.Sql"); sql == nil || len(sql.Locations) != 2 || *sql.Locations[1] != "northeurope" {
		t.Fatalf("sql endpoint after PUT: %+v", sql)
	}
	if s := subnetState(t, e.srv, id); !slices.Equal(s.ServiceEndpoints, []string{"Microsoft.Sql", armsim.ServiceStorage}) {
		t.Fatalf("snapshot endpoints %v", s.ServiceEndpoints)
	}
	// The other subnet is untouched.
	if s := subnetState(t, e.srv, "/subscriptions/"+testSub+"/resourcegroups/rg-test/providers/microsoft.network/virtualnetworks/vnet-0/subnets/nodes"); len(s.ServiceEndpoints) != 0 {
		t.Fatalf("vnet-0/nodes gained endpoints %v", s.ServiceEndpoints)
	}

	// Refused bodies leave the subnet as it was.
	bad := []struct {
		name string
		eps  []*armnetwork.ServiceEndpointPropertiesFormat
		code string
	}{
		{"unknown service", []*armnetwork.ServiceEndpointPropertiesFormat{{Service: to.Ptr("Microsoft.Nope")}}, armsim.CodeInvalidServiceNameOnServiceEndpoint},
		{"no service name", []*armnetwork.ServiceEndpointPropertiesFormat{{Locations: to.SliceOfPtrs("westeurope")}}, armsim.CodeInvalidServiceNameOnServiceEndpoint},
		{"duplicate", []*armnetwork.ServiceEndpointPropertiesFormat{{Service: to.Ptr("Microsoft.Storage")}, {Service: to.Ptr("MICROSOFT.STORAGE")}}, armsim.CodeDuplicateServiceEndpoint},
		{"empty location", []*armnetwork.ServiceEndpointPropertiesFormat{{Service: to.Ptr("Microsoft.Storage"), Locations: to.SliceOfPtrs(" ")}}, armsim.CodeInvalidRequestFormat},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			body := got.Subnet
			body.Properties = &armnetwork.SubnetPropertiesFormat{AddressPrefix: got.Properties.AddressPrefix, ServiceEndpoints: tc.eps}
			err := putSubnet(ctx, e.subnets, "vnet-1", "nodes", body)
			if status, code := errCode(t, err); status != http.StatusBadRequest || code != tc.code {
				t.Fatalf("got %d %s, want 400 %s", status, code, tc.code)
			}
			if s := subnetState(t, e.srv, id); len(s.ServiceEndpoints) != 2 {
				t.Fatalf("a refused PUT changed the endpoints to %v", s.ServiceEndpoints)
			}
		})
	}

	// A PUT without serviceEndpoints removes them, as a PUT replaces the subnet in Azure.
	got.Properties.ServiceEndpoints = nil
	if err := putSubnet(ctx, e.subnets, "vnet-1", "nodes", got.Subnet); err != nil {
		t.Fatalf("disable service endpoints: %v", err)
	}
	if s := subnetState(t, e.srv, id); len(s.ServiceEndpoints) != 0 {
		t.Fatalf("endpoints left after a PUT without them: %v", s.ServiceEndpoints)
	}
}

func TestTopologyServiceEndpoints(t *testing.T) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", "10.240.0.0/24", 1)
	topo.VNets[0].Subnets[0].ServiceEndpoints = []string{"Microsoft.Storage"}
	e := startEnv(t, armsim.Options{Topology: topo})
	got, err := e.sub.Get(ctxT(t), testRG, "vnet-0", "nodes", nil)
	if err != nil {
		t.Fatal(err)
	}
	if endpointOf(got.Subnet, armsim.ServiceStorage) == nil {
		t.Fatalf("topology endpoint not rendered: %+v", got.Properties.ServiceEndpoints)
	}
	// The VNet's own GET renders its subnets the same way.
	v, err := e.vnet.Get(ctxT(t), testRG, "vnet-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if endpointOf(*v.Properties.Subnets[0], armsim.ServiceStorage) == nil {
		t.Fatalf("vnet GET lacks the endpoint")
	}

	topo.VNets[0].Subnets[0].ServiceEndpoints = []string{"Microsoft.Nope"}
	if _, err := armsim.New(armsim.Options{Topology: topo}); err == nil {
		t.Fatal("a topology with an unknown endpoint service loaded")
	}
}
