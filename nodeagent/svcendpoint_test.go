package nodeagent

import (
	"slices"
	"testing"

	"github.com/nicpool/nicpool/nodeagent/ipam"
)

func TestNonMasqueradeCIDRsFollowSubnetServiceEndpoints(t *testing.T) {
	services, err := parseServiceEndpointPrefixes([]string{
		"Microsoft.Storage=192.0.2.0/24", "microsoft.storage=198.18.0.0/15,192.0.2.0/24", "Microsoft.Sql=192.0.3.0/24",
	})
	if err != nil {
		t.Fatal(err)
	}
	vnet := []string{"10.240.0.0/16"}
	extra := []string{"192.168.50.0/24"}
	tests := []struct {
		name      string
		endpoints []string
		want      []string
	}{
		{"no endpoint on the subnet: the service is reached through SNAT", nil, []string{"10.240.0.0/16", "192.168.50.0/24"}},
		{"storage endpoint: its prefixes, once each", []string{"Microsoft.Storage"}, []string{"10.240.0.0/16", "192.168.50.0/24", "192.0.2.0/24", "198.18.0.0/15"}},
		{"service names match in any case", []string{"MICROSOFT.SQL"}, []string{"10.240.0.0/16", "192.168.50.0/24", "192.0.3.0/24"}},
		{"an endpoint without configured prefixes adds nothing", []string{"Microsoft.KeyVault"}, []string{"10.240.0.0/16", "192.168.50.0/24"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := nonMasqueradeCIDRs(ipam.PoolState{VNetAddressSpace: vnet, ServiceEndpoints: tc.endpoints}, extra, services)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if !slices.Equal(vnet, []string{"10.240.0.0/16"}) {
		t.Fatalf("the pool's address space was modified: %v", vnet)
	}
}
