package vethname

import "testing"

func TestVethName(t *testing.T) {
	tests := []struct {
		name, containerID, ifName, want string
	}{
		// sha256("abc/eth0") starts 538f587a236; kept literal so a change breaks the plugin contract loudly.
		{"known value", "abc", "eth0", "np538f587a236"},
		{"empty inputs still give a valid name", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := VethName(tt.containerID, tt.ifName)
			if len(got) != 13 || got[:2] != Prefix {
				t.Fatalf("VethName(%q, %q) = %q, want 13 chars starting with %q", tt.containerID, tt.ifName, got, Prefix)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("VethName(%q, %q) = %q, want %q", tt.containerID, tt.ifName, got, tt.want)
			}
			if got != VethName(tt.containerID, tt.ifName) {
				t.Errorf("VethName is not deterministic")
			}
		})
	}
	if VethName("abc", "eth0") == VethName("abc", "eth1") {
		t.Errorf("different interfaces of one container got the same veth name")
	}
}
