package install

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func TestConfList(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"defaults", nil, `{"cniVersion":"1.1.0","name":"nicpool","plugins":[{"type":"nicpool","agentSocket":"/run/nicpool/agent.sock"}]}`},
		{"everything", func(c *Config) {
			c.NetworkName, c.AgentSocket, c.MTU, c.TimeoutSeconds, c.LogFile = "pods", "/run/x.sock", 1500, 30, "/var/log/nicpool.log"
			c.ChainPortmap, c.ChainBandwidth = true, true
		}, `{"cniVersion":"1.1.0","name":"pods","plugins":[` +
			`{"type":"nicpool","agentSocket":"/run/x.sock","mtu":1500,"timeoutSeconds":30,"logFile":"/var/log/nicpool.log"},` +
			`{"type":"portmap","capabilities":{"portMappings":true}},{"type":"bandwidth","capabilities":{"bandwidth":true}}]}`},
		{"bandwidth only", func(c *Config) { c.ChainBandwidth = true },
			`{"cniVersion":"1.1.0","name":"nicpool","plugins":[{"type":"nicpool","agentSocket":"/run/nicpool/agent.sock"},{"type":"bandwidth","capabilities":{"bandwidth":true}}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testInstaller(t, "x", tt.mutate).ConfList()
			if err != nil {
				t.Fatal(err)
			}
			var compact, want any
			if err := json.Unmarshal(got, &compact); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			g, _ := json.Marshal(compact)
			w, _ := json.Marshal(want)
			if string(g) != string(w) {
				t.Errorf("conflist:\n got %s\nwant %s", g, w)
			}
			if _, err := libcni.ConfListFromBytes(got); err != nil {
				t.Errorf("libcni rejects the conflist: %v", err)
			}
		})
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"relative bin dir", func(c *Config) { c.BinDir = "opt/cni/bin" }, `bin dir "opt/cni/bin": not an absolute path`},
		{"missing conf dir", func(c *Config) { c.ConfDir = "" }, `conf dir "": not an absolute path`},
		{"missing source", func(c *Config) { c.BinarySource = "" }, `binary source ""`},
		{"relative socket", func(c *Config) { c.AgentSocket = "agent.sock" }, `agent socket "agent.sock"`},
		{"relative log file", func(c *Config) { c.LogFile = "x.log" }, `log file "x.log"`},
		{"conf file not a conflist", func(c *Config) { c.ConfFileName = "10-nicpool.conf" }, `conf file name "10-nicpool.conf"`},
		{"conf file with a path", func(c *Config) { c.ConfFileName = "a/10-nicpool.conflist" }, "conf file name"},
		{"hidden conf file", func(c *Config) { c.ConfFileName = ".x.conflist" }, "conf file name"},
		{"bad network name", func(c *Config) { c.NetworkName = "no spaces" }, `network name "no spaces"`},
		{"mtu too small", func(c *Config) { c.MTU = 67 }, "mtu 67"},
		{"mtu too large", func(c *Config) { c.MTU = 65536 }, "mtu 65536"},
		{"negative timeout", func(c *Config) { c.TimeoutSeconds = -1 }, "timeout -1 seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{BinarySource: "/usr/local/bin/nicpool", BinDir: "/opt/cni/bin", ConfDir: "/etc/cni/net.d"}
			if _, err := New(cfg); err != nil {
				t.Fatalf("base config rejected: %v", err)
			}
			tt.mutate(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "validate cni install config: ") {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
