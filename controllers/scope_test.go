package controllers

import (
	"strings"
	"testing"
)

func TestScopeAllows(t *testing.T) {
	const nic = "/subscriptions/SUB-1/resourceGroups/RG-Nodes/providers/Microsoft.Network/networkInterfaces/vm-0-nic"
	tests := []struct {
		name    string
		scope   Scope
		nicID   string
		wantErr string
	}{
		{"no scope allows everything", Scope{}, nic, ""},
		{"same subscription, other case", Scope{SubscriptionID: "sub-1"}, nic, ""},
		{"same subscription and group", Scope{SubscriptionID: "SUB-1", ResourceGroup: "rg-nodes"}, nic, ""},
		{"other subscription", Scope{SubscriptionID: "sub-2"}, nic, "manages only subscription sub-2"},
		{"other resource group", Scope{ResourceGroup: "rg-other"}, nic, "manages only resource group rg-other"},
		{"not a NIC ID", Scope{SubscriptionID: "sub-1"}, "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm", "check scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.scope.Allows(tc.nicID)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Allows: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Allows = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestScopeValidate(t *testing.T) {
	if err := (Scope{SubscriptionID: "0000-1111", ResourceGroup: "rg"}).validate(); err != nil {
		t.Errorf("valid scope refused: %v", err)
	}
	if err := (Scope{ResourceGroup: "/subscriptions/x/resourceGroups/rg"}).validate(); err == nil {
		t.Error("a resource ID given as --resource-group was accepted")
	}
}
