package controllers

import (
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// fullNIC is a NIC as ARM returns it with n secondary IP configurations,
// each with the fields ARM fills in.
func fullNIC(n int) *armnetwork.Interface {
	nic := knownTestNIC("Succeeded")
	nic.Location = to.Ptr("westeurope")
	nic.Tags = map[string]*string{"owner": to.Ptr("nicpool")}
	nic.Properties.VirtualMachine = &armnetwork.SubResource{ID: to.Ptr("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")}
	nic.Properties.MacAddress = to.Ptr("00-0D-3A-00-00-01")
	nic.Properties.EnableAcceleratedNetworking = to.Ptr(true)
	for i := range n {
		nic.Properties.IPConfigurations = append(nic.Properties.IPConfigurations, &armnetwork.InterfaceIPConfiguration{
			ID:   to.Ptr(fmt.Sprintf("%s/ipConfigurations/nicpool-%d", *nic.ID, i)),
			Name: to.Ptr(fmt.Sprintf("nicpool-%d", i)),
			Etag: to.Ptr(`W/"1"`),
			Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
				PrivateIPAddress:          to.Ptr(fmt.Sprintf("10.0.%d.%d", i/250, i%250+4)),
				PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic),
				PrivateIPAddressVersion:   to.Ptr(armnetwork.IPVersionIPv4),
				Primary:                   to.Ptr(i == 0),
				ProvisioningState:         to.Ptr(armnetwork.ProvisioningStateSucceeded),
				Subnet:                    &armnetwork.Subnet{ID: to.Ptr("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s")},
				ApplicationSecurityGroups: []*armnetwork.ApplicationSecurityGroup{{ID: to.Ptr("/asg/web")}},
			},
		})
	}
	return nic
}

// BenchmarkKnownNICs is one pass's use of the memory on a NIC with 250 IP
// configurations: remember the write's result, get a private copy.
func BenchmarkKnownNICs(b *testing.B) {
	nic := fullNIC(250)
	var k knownNICs
	now := time.Now()
	for b.Loop() {
		k.remember(nic, now)
		if k.get(*nic.ID, now, time.Minute) == nil {
			b.Fatal("not known")
		}
	}
}
