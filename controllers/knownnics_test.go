package controllers

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

func knownTestNIC(state string, configs ...string) *armnetwork.Interface {
	nic := &armnetwork.Interface{ID: to.Ptr("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n"),
		Etag: to.Ptr(`W/"1"`), Properties: &armnetwork.InterfacePropertiesFormat{ProvisioningState: to.Ptr(armnetwork.ProvisioningState(state))}}
	for _, c := range configs {
		nic.Properties.IPConfigurations = append(nic.Properties.IPConfigurations, &armnetwork.InterfaceIPConfiguration{Name: to.Ptr(c)})
	}
	return nic
}

func TestKnownNICs(t *testing.T) {
	now := time.Now()
	id := *knownTestNIC("Succeeded").ID
	tests := []struct {
		name  string
		nic   *armnetwork.Interface
		age   time.Duration
		known bool
	}{
		{name: "settled, fresh", nic: knownTestNIC("Succeeded", "a"), age: time.Second, known: true},
		{name: "settled, too old", nic: knownTestNIC("Succeeded", "a"), age: defaultKnownNICTTL},
		{name: "write running", nic: knownTestNIC("Updating", "a")},
		{name: "failed", nic: knownTestNIC("Failed", "a")},
		{name: "no state (not ARM's answer)", nic: knownTestNIC("", "a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k knownNICs
			k.remember(knownTestNIC("Succeeded", "old"), now)
			k.remember(tt.nic, now)
			got := k.get(id, now.Add(tt.age), defaultKnownNICTTL)
			if (got != nil) != tt.known {
				t.Fatalf("known = %v, want %v", got != nil, tt.known)
			}
			if got == nil {
				return
			}
			// The pass gets its own copy: changing it changes nothing remembered.
			got.Properties.IPConfigurations[0].Name = to.Ptr("changed")
			if again := k.get(id, now, defaultKnownNICTTL); *again.Properties.IPConfigurations[0].Name != "a" {
				t.Fatalf("remembered nic changed through a copy: %s", *again.Properties.IPConfigurations[0].Name)
			}
			k.forget(id)
			if k.get(id, now, defaultKnownNICTTL) != nil {
				t.Fatal("forgotten nic still known")
			}
		})
	}
}
