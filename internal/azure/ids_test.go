package azure

import (
	"errors"
	"testing"
)

const (
	testSub    = "00000000-0000-0000-0000-000000000001"
	testNICID  = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/vm-0-nic"
	testVNetID = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet1"
	testSubnet = testVNetID + "/subnets/nodes"
	testVMID   = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm-0"
)

func TestParseNICID(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantRG  string
		wantNIC string
		wantErr bool
	}{
		{name: "canonical", id: testNICID, wantRG: "rg1", wantNIC: "vm-0-nic"},
		{name: "mixed case keywords", id: "/SUBSCRIPTIONS/" + testSub + "/resourcegroups/RG1/PROVIDERS/microsoft.network/NetworkInterfaces/Nic-A", wantRG: "RG1", wantNIC: "Nic-A"},
		{name: "trailing slash", id: testNICID + "/", wantRG: "rg1", wantNIC: "vm-0-nic"},
		{name: "empty", id: "", wantErr: true},
		{name: "garbage", id: "not-an-id", wantErr: true},
		{name: "wrong type", id: testVNetID, wantErr: true},
		{name: "child of nic", id: testNICID + "/ipConfigurations/ipconfig1", wantErr: true},
		{name: "missing name", id: "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces", wantErr: true},
		{name: "empty segment", id: "/subscriptions//resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/n", wantErr: true},
		{name: "wrong keyword", id: "/subscriptions/s/resourceGroupz/rg1/providers/Microsoft.Network/networkInterfaces/n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNICID(tt.id)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrInvalidResourceID) {
					t.Fatalf("ParseNICID(%q) = %+v, %v; want ErrInvalidResourceID", tt.id, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNICID(%q): %v", tt.id, err)
			}
			if got.SubscriptionID != testSub || got.ResourceGroup != tt.wantRG || got.Name != tt.wantNIC || got.Parent != nil {
				t.Fatalf("ParseNICID(%q) = %+v", tt.id, got)
			}
		})
	}
}

func TestSubnetAndVNetIDs(t *testing.T) {
	tests := []struct {
		name     string
		subnetID string
		wantVNet string
		wantErr  bool
	}{
		{name: "canonical", subnetID: testSubnet, wantVNet: testVNetID},
		{name: "mixed case", subnetID: "/subscriptions/" + testSub + "/RESOURCEGROUPS/rg1/providers/Microsoft.Network/VIRTUALNETWORKS/vnet1/SUBNETS/nodes",
			wantVNet: "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Network/VIRTUALNETWORKS/vnet1"},
		{name: "vnet not subnet", subnetID: testVNetID, wantErr: true},
		{name: "nic not subnet", subnetID: testNICID, wantErr: true},
		{name: "empty", subnetID: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VNetIDFromSubnetID(tt.subnetID)
			if (err != nil) != tt.wantErr {
				t.Fatalf("VNetIDFromSubnetID(%q) = %q, %v; wantErr %v", tt.subnetID, got, err, tt.wantErr)
			}
			if got != tt.wantVNet {
				t.Fatalf("VNetIDFromSubnetID(%q) = %q, want %q", tt.subnetID, got, tt.wantVNet)
			}
			if !tt.wantErr {
				if _, err := ParseVNetID(got); err != nil {
					t.Fatalf("ParseVNetID(%q): %v", got, err)
				}
			}
		})
	}
}

func TestResourceIDStringRoundTrip(t *testing.T) {
	for _, id := range []string{testNICID, testVNetID, testSubnet, testVMID} {
		t.Run(id, func(t *testing.T) {
			r, err := ParseResourceID(id)
			if err != nil {
				t.Fatal(err)
			}
			if r.String() != id {
				t.Fatalf("String() = %q, want %q", r.String(), id)
			}
		})
	}
}

func TestVMIDFromProviderID(t *testing.T) {
	vmss := "azure:///subscriptions/" + testSub + "/resourceGroups/mc_rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool1/virtualMachines/3"
	tests := []struct {
		name       string
		providerID string
		want       string
		wantErr    error
	}{
		{name: "vm", providerID: "azure://" + testVMID, want: testVMID},
		{name: "mixed case scheme and keywords", providerID: "Azure:///Subscriptions/" + testSub + "/ResourceGroups/RG1/providers/microsoft.compute/VirtualMachines/VM-0",
			want: "/Subscriptions/" + testSub + "/ResourceGroups/RG1/providers/microsoft.compute/VirtualMachines/VM-0"},
		{name: "empty", providerID: "", wantErr: ErrNoProviderID},
		{name: "blank", providerID: "  ", wantErr: ErrNoProviderID},
		{name: "vmss instance", providerID: vmss, wantErr: ErrUnsupportedProvider},
		{name: "aws", providerID: "aws:///us-east-1a/i-0123456789abcdef0", wantErr: ErrUnsupportedProvider},
		{name: "kind", providerID: "kind://docker/kind/kind-worker", wantErr: ErrUnsupportedProvider},
		{name: "azure two slashes", providerID: "azure://subscriptions/x", wantErr: ErrUnsupportedProvider},
		{name: "azure non-vm resource", providerID: "azure://" + testNICID, wantErr: ErrUnsupportedProvider},
		{name: "azure garbage path", providerID: "azure:///nonsense", wantErr: ErrInvalidResourceID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VMIDFromProviderID(tt.providerID)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("VMIDFromProviderID(%q) = %q, %v; want %v", tt.providerID, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("VMIDFromProviderID(%q) = %q, %v; want %q", tt.providerID, got, err, tt.want)
			}
			if _, err := ParseVMID(got); err != nil {
				t.Fatalf("result does not parse as a vm id: %v", err)
			}
		})
	}
}

func TestSameID(t *testing.T) {
	if !SameID(testVMID, "/SUBSCRIPTIONS/"+testSub+"/resourcegroups/RG1/providers/microsoft.compute/virtualmachines/VM-0/") {
		t.Fatal("ids differing in case and trailing slash should match")
	}
	if SameID(testVMID, testVMID+"1") {
		t.Fatal("different vms matched")
	}
}
