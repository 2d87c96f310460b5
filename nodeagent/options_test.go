package nodeagent

import (
	"net"
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
		{"service endpoint prefixes", []string{"--node-name=n1", "--service-endpoint-prefixes=Microsoft.Storage=192.0.2.0/24,198.18.0.0/15", "--service-endpoint-prefixes=Microsoft.Sql=192.0.3.0/24"}, ""},
		{"service endpoint prefixes without service", []string{"--node-name=n1", "--service-endpoint-prefixes=192.0.2.0/24"}, "not Service=cidr"},
		{"service endpoint prefix with host bits", []string{"--node-name=n1", "--service-endpoint-prefixes=Microsoft.Storage=192.0.2.1/24"}, "without host bits"},
		{"service endpoint prefixes empty list", []string{"--node-name=n1", "--service-endpoint-prefixes=Microsoft.Storage="}, "not Service=cidr"},
		{"relative socket", []string{"--node-name=n1", "--socket=agent.sock"}, "--socket"},
		{"zero alloc timeout", []string{"--node-name=n1", "--alloc-timeout=0s"}, "--alloc-timeout"},
		{"mtu out of range", []string{"--node-name=n1", "--mtu=100"}, "--mtu 100"},
		{"cni version explicit", []string{"--node-name=n1", "--cni-version=1.0.0"}, ""},
		{"cni version unknown", []string{"--node-name=n1", "--cni-version=2.0.0"}, "--cni-version"},
		{"no warm and no min target", []string{"--node-name=n1", "--warm-ip-target=0", "--min-ip-target=0"}, "never get its first IP"},
		{"old introspection flag is accepted and ignored", []string{"--node-name=n1", "--introspection-addr=0.0.0.0:9101"}, ""},
		{"health probes off the node", []string{"--node-name=n1", "--health-addr=0.0.0.0:9546"}, "not a loopback"},
		{"health probes on localhost", []string{"--node-name=n1", "--health-addr=localhost:9546"}, ""},
		{"health probes disabled", []string{"--node-name=n1", "--health-addr="}, ""},
		{"metrics on every address by accident", []string{"--node-name=n1", "--metrics-addr=:9545"}, "names no host"},
		{"metrics on every address deliberately", []string{"--node-name=n1", "--metrics-addr=0.0.0.0:9545"}, ""},
		{"metrics on the node IP", []string{"--node-name=n1", "--metrics-addr=10.0.0.4:9545"}, ""},
		{"metrics disabled", []string{"--node-name=n1", "--metrics-addr="}, ""},
		{"min above max", []string{"--node-name=n1", "--min-ip-target=50", "--max-ips=20"}, "minimum IP target 50"},
		{"standalone imds needs no node name", []string{"--pool-source=imds"}, ""},
		{"unknown pool source", []string{"--pool-source=etcd"}, "--pool-source"},
		{"imds over https", []string{"--pool-source=imds", "--imds-endpoint=https://169.254.169.254"}, "--imds-endpoint"},
		{"imds bad vnet cidr", []string{"--pool-source=imds", "--vnet-cidrs=10.0.0.0/33"}, "--vnet-cidrs"},
		{"arm needs a nic or vm", []string{"--pool-source=arm"}, "--nic-id or --vm-id"},
		{"arm with a vm id", []string{"--pool-source=arm", "--vm-id=/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"}, ""},
		{"arm share above the per-VM limit", []string{"--pool-source=arm", "--nic-id=x", "--vnet-share=300"}, "--vnet-share"},
		{"arm auth none off loopback", []string{"--pool-source=arm", "--nic-id=x", "--auth-mode=none", "--arm-endpoint=https://10.0.0.1"}, "loopback"},
		{"standalone resync zero", []string{"--pool-source=imds", "--pool-resync=0s"}, "--pool-resync"},
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

// The defaults must not expose anything on the node's addresses, nor take
// node-exporter's port.
func TestDefaultEndpoints(t *testing.T) {
	o := DefaultOptions()
	for name, addr := range map[string]string{"metrics": o.MetricsAddr, "health": o.HealthAddr} {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%s default %q: %v", name, addr, err)
		}
		if host != "127.0.0.1" {
			t.Errorf("%s default %q is not on the loopback address", name, addr)
		}
		if port == "9100" {
			t.Errorf("%s default %q collides with node-exporter (9100)", name, addr)
		}
	}
	if o.MetricsAddr == o.HealthAddr {
		t.Errorf("metrics and health share %s", o.MetricsAddr)
	}
}
