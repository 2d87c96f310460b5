package controllers

import (
	"reflect"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
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
