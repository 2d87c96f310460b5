package armsim_test

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestPutValidation(t *testing.T) {
	tests := []struct {
		name       string
		subnetCIDR string
		mutate     func(nic *armnetwork.Interface)
		wantStatus int
		wantCode   string
	}{
		{
			name: "subnet with one free address takes one", subnetCIDR: "10.240.0.0/29", // .4 .5 held
			mutate: func(nic *armnetwork.Interface) { addSecondaries(nic, "p", 1) },
		},
		{
			name: "subnet with one free address refuses two", subnetCIDR: "10.240.0.0/29",
			mutate:     func(nic *armnetwork.Interface) { addSecondaries(nic, "p", 2) },
			wantStatus: 400, wantCode: armsim.CodeSubnetIsFull,
		},
		{
			name: "256 ip configurations are accepted", subnetCIDR: "10.240.0.0/22",
			mutate: func(nic *armnetwork.Interface) { addSecondaries(nic, "p", 255) },
		},
		{
			name: "the 257th ip configuration is refused", subnetCIDR: "10.240.0.0/22",
			mutate:     func(nic *armnetwork.Interface) { addSecondaries(nic, "p", 256) },
			wantStatus: 400, wantCode: armsim.CodeTooManyIPConfigurations,
		},
		{
			name: "removing the primary is refused", subnetCIDR: "10.240.0.0/24",
			mutate: func(nic *armnetwork.Interface) {
				addSecondaries(nic, "p", 1)
				nic.Properties.IPConfigurations = nic.Properties.IPConfigurations[1:]
			},
			wantStatus: 400, wantCode: armsim.CodePrimaryIPConfigRequired,
		},
		{
			name: "static address held by another nic is refused", subnetCIDR: "10.240.0.0/24",
			mutate: func(nic *armnetwork.Interface) {
				addSecondaries(nic, "p", 1)
				p := nic.Properties.IPConfigurations[1].Properties
				p.PrivateIPAllocationMethod = to.Ptr(armnetwork.IPAllocationMethodStatic)
				p.PrivateIPAddress = to.Ptr("10.240.0.4") // vm-0's primary
			},
			wantStatus: 400, wantCode: armsim.CodePrivateIPAddressInUse,
		},
		{
			name: "static reserved address is refused", subnetCIDR: "10.240.0.0/24",
			mutate: func(nic *armnetwork.Interface) {
				addSecondaries(nic, "p", 1)
				p := nic.Properties.IPConfigurations[1].Properties
				p.PrivateIPAllocationMethod = to.Ptr(armnetwork.IPAllocationMethodStatic)
				p.PrivateIPAddress = to.Ptr("10.240.0.255")
			},
			wantStatus: 400, wantCode: armsim.CodePrivateIPNotInSubnet,
		},
		{
			name: "unknown subnet is refused", subnetCIDR: "10.240.0.0/24",
			mutate: func(nic *armnetwork.Interface) {
				addSecondaries(nic, "p", 1)
				nic.Properties.IPConfigurations[1].Properties.Subnet.ID = to.Ptr("/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Network/virtualNetworks/vnet-0/subnets/nope")
			},
			wantStatus: 400, wantCode: armsim.CodeInvalidResourceReference,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			topo := armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", tc.subnetCIDR, 2)
			e := startEnv(t, armsim.Options{Topology: topo})
			ctx := ctxT(t)
			got, err := e.nics.Get(ctx, testRG, "vm-1-nic", nil)
			if err != nil {
				t.Fatalf("get nic: %v", err)
			}
			before := len(got.Properties.IPConfigurations)
			nic := got.Interface
			tc.mutate(&nic)
			p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-1-nic", nic, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, fastPoll)
			}
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("put: %v", err)
				}
				return
			}
			if status, code := errCode(t, err); status != tc.wantStatus || code != tc.wantCode {
				t.Fatalf("put got %d %s, want %d %s", status, code, tc.wantStatus, tc.wantCode)
			}
			after, err := e.nics.Get(ctx, testRG, "vm-1-nic", nil)
			if err != nil {
				t.Fatalf("get nic: %v", err)
			}
			if *after.Etag != *got.Etag || len(after.Properties.IPConfigurations) != before {
				t.Errorf("refused put changed the nic")
			}
		})
	}
}

func TestRemovalFreesAddresses(t *testing.T) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", "10.240.0.0/29", 1)
	e := startEnv(t, armsim.Options{Topology: topo})
	ctx := ctxT(t)
	put := func(nic armnetwork.Interface) armnetwork.Interface {
		t.Helper()
		p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", nic, nil)
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		res, err := p.PollUntilDone(ctx, fastPoll)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return res.Interface
	}
	got, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	full := got.Interface
	addSecondaries(&full, "a", 2) // subnet now full: .4 .5 .6
	full = put(full)
	full.Properties.IPConfigurations = full.Properties.IPConfigurations[:1]
	freed := put(full)
	addSecondaries(&freed, "b", 2)
	again := put(freed)
	if n := len(again.Properties.IPConfigurations); n != 3 {
		t.Fatalf("nic has %d configs after re-adding, want 3", n)
	}
}
