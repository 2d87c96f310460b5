package controllers

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
)

func TestServiceEndpointsFromSubnet(t *testing.T) {
	tests := []struct {
		name   string
		subnet *armnetwork.Subnet
		want   []nicpoolv1.SubnetServiceEndpoint
	}{
		{"no subnet", nil, nil},
		{"no properties", &armnetwork.Subnet{}, nil},
		{"none", &armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{}}, nil},
		{"sorted by service, empty entries skipped", &armnetwork.Subnet{Properties: &armnetwork.SubnetPropertiesFormat{
			ServiceEndpoints: []*armnetwork.ServiceEndpointPropertiesFormat{
				{Service: to.Ptr("Microsoft.Storage"), Locations: []*string{to.Ptr("westeurope"), nil, to.Ptr("")}},
				nil, {Locations: to.SliceOfPtrs("westeurope")}, {Service: to.Ptr("")},
				{Service: to.Ptr("Microsoft.KeyVault")},
			}}}, []nicpoolv1.SubnetServiceEndpoint{
			{Service: "Microsoft.KeyVault"}, {Service: "Microsoft.Storage", Locations: []string{"westeurope"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := serviceEndpoints(tc.subnet); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// uncachedSubnets reads subnets straight from ARM, so a test sees an administrator's
// change without waiting out the NIC client's read cache.
type uncachedSubnets struct {
	*azure.NICClient
	subnets *armnetwork.SubnetsClient
}

func (u uncachedSubnets) GetSubnet(ctx context.Context, id string) (*armnetwork.Subnet, error) {
	sid, err := azure.ParseSubnetID(id)
	if err != nil {
		return nil, err
	}
	resp, err := u.subnets.Get(ctx, sid.ResourceGroup, sid.Parent.Name, sid.Name, nil)
	if err != nil {
		return nil, err
	}
	return &resp.Subnet, nil
}

// TestSubnetServiceEndpointsFollowed: an endpoint the administrator enables (then
// removes) on an idle cluster reaches the pool's status without any change to the pool
// or its Node: the subnet follower wakes the pool.
func TestSubnetServiceEndpointsFollowed(t *testing.T) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.43.0.0/16", "10.43.0.0/24", 1)
	_, co, cred := armsimtest.Start(t, armsim.Options{Topology: topo, Throttle: armsim.ThrottleOptions{Disabled: true}, PutLatency: 20 * time.Millisecond})
	nics, err := azure.NewNICClient(azure.Config{ClientOptions: co, Credential: cred, ReadQPS: 2000, ReadBurst: 2000, WriteQPS: 2000, WriteBurst: 2000, LROTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f, err := armnetwork.NewClientFactory(testSub, cred, co)
	if err != nil {
		t.Fatal(err)
	}
	subnets := f.NewSubnetsClient()
	launchOperator(t, operatorSpec{opts: testOptions(), nics: uncachedSubnets{NICClient: nics, subnets: subnets},
		tweak: func(r *PoolReconciler) { r.subnetResync = 100 * time.Millisecond }})
	createNode(t, "follow-0", providerID(0))
	// Waits are bounds: the follower checks every 100 ms and a pass takes well under
	// a second on an idle machine.
	eventually(t, 30*time.Second, func() string {
		if lookPool("follow-0").Status.SubnetID == "" {
			return "pool follow-0 has no subnet yet"
		}
		return ""
	})
	set := func(eps []*armnetwork.ServiceEndpointPropertiesFormat) {
		t.Helper()
		got, err := subnets.Get(context.Background(), testRG, "vnet-0", "nodes", nil)
		if err != nil {
			t.Fatal(err)
		}
		got.Properties.ServiceEndpoints = eps
		p, err := subnets.BeginCreateOrUpdate(context.Background(), testRG, "vnet-0", "nodes", got.Subnet, nil)
		if err == nil {
			_, err = p.PollUntilDone(context.Background(), nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	set([]*armnetwork.ServiceEndpointPropertiesFormat{{Service: to.Ptr(armsim.ServiceStorage)}})
	eventually(t, 30*time.Second, func() string {
		if eps := lookPool("follow-0").Status.SubnetServiceEndpoints; len(eps) != 1 || eps[0].Service != armsim.ServiceStorage {
			return "pool status endpoints: " + fmt.Sprint(eps)
		}
		return ""
	})
	set(nil)
	eventually(t, 30*time.Second, func() string {
		if eps := lookPool("follow-0").Status.SubnetServiceEndpoints; len(eps) != 0 {
			return "endpoints left in the pool status: " + fmt.Sprint(eps)
		}
		return ""
	})
}
