package cni

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantCode uint // 0: valid
		check    func(t *testing.T, c *NetConf)
	}{
		{name: "defaults", in: `{"cniVersion":"1.1.0","name":"n","type":"nicpool"}`, check: func(t *testing.T, c *NetConf) {
			if c.AgentSocket != agentapi.DefaultSocketPath || c.TimeoutSeconds != DefaultTimeoutSeconds || c.MTU != 0 {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{name: "all plugin fields", in: `{"cniVersion":"1.0.0","name":"n","type":"nicpool","agentSocket":"/run/x.sock","mtu":1500,"timeoutSeconds":600,"logFile":"/var/log/np.log"}`,
			check: func(t *testing.T, c *NetConf) {
				if c.AgentSocket != "/run/x.sock" || c.MTU != 1500 || c.TimeoutSeconds != 600 || c.LogFile != "/var/log/np.log" {
					t.Errorf("fields not read: %+v", c)
				}
			}},
		{name: "standard keys runtimes send", in: `{"cniVersion":"1.1.0","name":"n","type":"nicpool","capabilities":{"portMappings":true},
			"runtimeConfig":{"portMappings":[{"hostPort":80}],"bandwidth":{"ingressRate":1}},"args":{"cni":{"labels":[]}},
			"dns":{"nameservers":["10.0.0.10"]},"prevResult":{"cniVersion":"1.1.0","interfaces":[]},
			"cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}],"cni.dev/attachments":[],"cni.dev/future":1}`,
			check: func(t *testing.T, c *NetConf) {
				if !c.hasValidAttachments || len(c.ValidAttachments) != 1 || len(c.DNS.Nameservers) != 1 {
					t.Errorf("standard keys not read: %+v", c)
				}
			}},
		{name: "legacy gc key", in: `{"cniVersion":"1.1.0","name":"n","cni.dev/attachments":[{"containerID":"c","ifname":"eth0"}]}`,
			check: func(t *testing.T, c *NetConf) {
				if !c.hasValidAttachments || len(c.ValidAttachments) != 1 {
					t.Errorf("cni.dev/attachments not read: %+v", c.ValidAttachments)
				}
			}},
		{name: "no gc list", in: `{"cniVersion":"1.1.0","name":"n"}`, check: func(t *testing.T, c *NetConf) {
			if c.hasValidAttachments {
				t.Errorf("absent list read as present")
			}
		}},
		{name: "typo in plugin key", in: `{"cniVersion":"1.1.0","name":"n","agentSoket":"/x"}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "wrong type of mtu", in: `{"cniVersion":"1.1.0","name":"n","mtu":"1500"}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "mtu too small", in: `{"cniVersion":"1.1.0","name":"n","mtu":10}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "timeout too long", in: `{"cniVersion":"1.1.0","name":"n","timeoutSeconds":601}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "negative timeout", in: `{"cniVersion":"1.1.0","name":"n","timeoutSeconds":-1}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "relative socket", in: `{"cniVersion":"1.1.0","name":"n","agentSocket":"agent.sock"}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "relative log file", in: `{"cniVersion":"1.1.0","name":"n","logFile":"np.log"}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "ipam set", in: `{"cniVersion":"1.1.0","name":"n","ipam":{"type":"host-local"}}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "missing version", in: `{"name":"n"}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "garbage version", in: `{"cniVersion":"x.y","name":"n"}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "missing name", in: `{"cniVersion":"1.1.0"}`, wantCode: types.ErrInvalidNetworkConfig},
		{name: "not json", in: `{"cniVersion":`, wantCode: types.ErrDecodingFailure},
		{name: "json array", in: `[]`, wantCode: types.ErrDecodingFailure},
		{name: "json null", in: `null`, wantCode: types.ErrDecodingFailure},
		{name: "bad gc list", in: `{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":"all"}`, wantCode: types.ErrDecodingFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tt.in))
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("ParseConfig: %v", err)
				}
				tt.check(t, c)
				return
			}
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != tt.wantCode {
				t.Fatalf("got %v, want CNI error code %d", err, tt.wantCode)
			}
		})
	}
}

func TestParsePodArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    podArgs
		wantErr bool
	}{
		{"", podArgs{}, false},
		{"IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=dns-1;K8S_POD_UID=u", podArgs{"kube-system", "dns-1", "u"}, false},
		{"K8S_POD_NAME=a=b", podArgs{Name: "a=b"}, false},
		{"K8S_POD_NAME=x;;", podArgs{Name: "x"}, false},
		{"K8S_POD_NAME", podArgs{}, true},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.in, ";", ","), func(t *testing.T) {
			got, err := parsePodArgs(tt.in)
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Errorf("parsePodArgs(%q) = %+v, %v; want %+v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
