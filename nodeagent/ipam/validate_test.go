package ipam

import (
	"strings"
	"testing"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// The agent must refuse what libcni refuses (a runtime's libcni never sends
// it, so only a confused or hostile local client does).
func TestValidateKeyMatchesLibcni(t *testing.T) {
	tests := []struct {
		name        string
		containerID string
		ifName      string
		ok          bool
	}{
		{"docker id", strings.Repeat("ab12", 16), "eth0", true},
		{"every allowed character", "a-B_9.z", "net1", true},
		{"15-byte ifName", "c", "abcdefghijklmno", true},
		{"ifName dot-dot", "c", "..", false},
		{"ifName dot", "c", ".", false},
		{"ifName with slash", "c", "a/b", false},
		{"ifName with colon", "c", "eth0:1", false},
		{"ifName with space", "c", "eth 0", false},
		{"ifName with a unicode space", "c", "eth\u00a00", false},
		{"ifName with a control character", "c", "eth\x010", false},
		{"16-byte ifName", "c", "abcdefghijklmnop", false},
		{"container ID starting with a dash", "-c", "eth0", false},
		{"container ID starting with a dot", ".c", "eth0", false},
		{"container ID with a control character", "c\x01d", "eth0", false},
		{"container ID with a newline", "c\nd", "eth0", false},
		{"container ID with a colon", "c:d", "eth0", false},
		{"container ID with a slash", "../x", "eth0", false},
		{"container ID with non-ASCII", "cé", "eth0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateKey(agentapi.AttachmentKey{ContainerID: tt.containerID, IfName: tt.ifName})
			if (err == nil) != tt.ok {
				t.Errorf("ValidateKey(%q, %q) = %v, want ok %t", tt.containerID, tt.ifName, err, tt.ok)
			}
			if err != nil && codeOf(err) != agentapi.CodeInvalidFields {
				t.Errorf("error %v is not an invalid-fields agentapi.Error", err)
			}
		})
	}
}

// A rejected value is quoted in the error (which is logged and returned to
// the runtime) as a short excerpt, never whole.
func TestValidationErrorsQuoteShortExcerpts(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	for _, k := range []agentapi.AttachmentKey{
		{ContainerID: huge, IfName: "eth0"},
		{ContainerID: "c", IfName: huge},
		{Network: huge, ContainerID: "c", IfName: "eth0"},
		{ContainerID: "\x01" + huge, IfName: "eth0"},
	} {
		err := ValidateKey(k)
		if err == nil {
			t.Fatalf("ValidateKey accepted a 1 MiB field")
		}
		if len(err.Error()) > 512 {
			t.Errorf("error message is %d bytes long: %.100s...", len(err.Error()), err.Error())
		}
	}
}
