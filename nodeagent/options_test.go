package nodeagent

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults with a node name", []string{"--node-name=n1"}, ""},
		{"node name required", nil, "--node-name"},
		{"max ips above 250", []string{"--node-name=n1", "--max-ips=251"}, "max IPs 251"},
		{"zero batch", []string{"--node-name=n1", "--batch-size=0"}, "batch size 0"},
		{"bad non-masquerade cidr", []string{"--node-name=n1", "--non-masquerade-cidrs=10.0.0.0/8,nope"}, `"nope" is not an IPv4 CIDR`},
		{"relative socket", []string{"--node-name=n1", "--socket=agent.sock"}, "--socket"},
		{"zero alloc timeout", []string{"--node-name=n1", "--alloc-timeout=0s"}, "--alloc-timeout"},
		{"mtu out of range", []string{"--node-name=n1", "--mtu=100"}, "--mtu 100"},
		{"cni version explicit", []string{"--node-name=n1", "--cni-version=1.0.0"}, ""},
		{"cni version unknown", []string{"--node-name=n1", "--cni-version=2.0.0"}, "--cni-version"},
		{"no warm and no min target", []string{"--node-name=n1", "--warm-ip-target=0", "--min-ip-target=0"}, "never get its first IP"},
		{"introspection off the node", []string{"--node-name=n1", "--introspection-addr=0.0.0.0:9101"}, "not a loopback"},
		{"introspection on localhost", []string{"--node-name=n1", "--introspection-addr=localhost:9101"}, ""},
		{"introspection disabled", []string{"--node-name=n1", "--introspection-addr="}, ""},
		{"min above max", []string{"--node-name=n1", "--min-ip-target=50", "--max-ips=20"}, "minimum IP target 50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", "")
			o := DefaultOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}
