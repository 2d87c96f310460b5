package azure

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{name: "zero value is valid", cfg: Config{}},
		{name: "china cloud", cfg: Config{Cloud: CloudChina, Auth: AuthManagedIdentity, ClientID: "abc"}},
		{name: "armsim", cfg: Config{ARMEndpoint: "https://127.0.0.1:8443", Auth: AuthNone}},
		{name: "armsim localhost", cfg: Config{ARMEndpoint: "https://localhost:8443/", Auth: AuthNone}},
		{name: "armsim ipv6", cfg: Config{ARMEndpoint: "https://[::1]:8443", Auth: AuthNone}},
		{name: "unknown cloud", cfg: Config{Cloud: "AzureMoon"}, wantErr: `cloud "AzureMoon"`},
		{name: "unknown auth", cfg: Config{Auth: "password"}, wantErr: `auth mode "password"`},
		{name: "none against real azure", cfg: Config{Auth: AuthNone}, wantErr: "only allowed for a loopback"},
		{name: "none against remote host", cfg: Config{Auth: AuthNone, ARMEndpoint: "https://armsim.example.com"}, wantErr: "only allowed for a loopback"},
		{name: "http endpoint", cfg: Config{ARMEndpoint: "http://127.0.0.1:80"}, wantErr: "https://"},
		{name: "relative endpoint", cfg: Config{ARMEndpoint: "127.0.0.1:80"}, wantErr: "arm endpoint"},
		{name: "no host", cfg: Config{ARMEndpoint: "https:///x"}, wantErr: "https://"},
		{name: "negative qps", cfg: Config{ReadQPS: -1}, wantErr: "negative"},
		{name: "negative burst", cfg: Config{WriteBurst: -1}, wantErr: "negative"},
		{name: "negative lro timeout", cfg: Config{LROTimeout: -time.Second}, wantErr: "lro timeout"},
		{name: "poll interval too fast", cfg: Config{LROPollInterval: 10 * time.Millisecond}, wantErr: "poll interval"},
		{name: "several problems at once", cfg: Config{Cloud: "x", Auth: "y"}, wantErr: `auth mode "y"`},
		{name: "credential override allows none anywhere", cfg: Config{Auth: AuthNone, Credential: staticCredential{}}},
		{name: "none with loopback base options", cfg: Config{Auth: AuthNone, ClientOptions: &arm.ClientOptions{ClientOptions: policy.ClientOptions{
			Cloud: cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: "https://127.0.0.1:1", Audience: "x"}}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCloudConfig(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		wantEndpoint string
		wantAudience string
	}{
		{name: "public default", cfg: Config{}, wantEndpoint: "https://management.azure.com", wantAudience: "https://management.core.windows.net/"},
		{name: "china", cfg: Config{Cloud: CloudChina}, wantEndpoint: "https://management.chinacloudapi.cn", wantAudience: "https://management.core.chinacloudapi.cn/"},
		{name: "endpoint override keeps audience", cfg: Config{ARMEndpoint: "https://127.0.0.1:9"}, wantEndpoint: "https://127.0.0.1:9", wantAudience: "https://management.core.windows.net/"},
		{name: "audience override", cfg: Config{ARMEndpoint: "https://127.0.0.1:9", TokenAudience: "api://armsim"}, wantEndpoint: "https://127.0.0.1:9", wantAudience: "api://armsim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := cloudConfig(tt.cfg.withDefaults())
			if err != nil {
				t.Fatal(err)
			}
			rm := conf.Services[cloud.ResourceManager]
			if rm.Endpoint != tt.wantEndpoint || rm.Audience != tt.wantAudience {
				t.Fatalf("resource manager = %+v, want endpoint %q audience %q", rm, tt.wantEndpoint, tt.wantAudience)
			}
		})
	}
	// Overrides must never leak into the SDK's shared cloud globals.
	if got := cloud.AzurePublic.Services[cloud.ResourceManager].Endpoint; got != "https://management.azure.com" {
		t.Fatalf("global AzurePublic was modified: %q", got)
	}
}

func TestNewNICClientErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "invalid config", cfg: Config{Auth: "bogus"}, wantErr: "validate azure config"},
		{name: "missing ca file", cfg: Config{Auth: AuthNone, ARMEndpoint: "https://127.0.0.1:1", CACertFile: filepath.Join(dir, "nope.pem")}, wantErr: "read ca bundle"},
		{name: "ca file without certs", cfg: Config{Auth: AuthNone, ARMEndpoint: "https://127.0.0.1:1", CACertFile: notPEM}, wantErr: "no PEM certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewNICClient(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewNICClient() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestStaticCredentialOnlyForLoopback(t *testing.T) {
	c, err := NewNICClient(Config{Auth: AuthNone, ARMEndpoint: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.cred.GetToken(context.Background(), policy.TokenRequestOptions{})
	if err != nil || tok.Token == "" {
		t.Fatalf("static token = %+v, %v", tok, err)
	}
	if _, err := NewNICClient(Config{Auth: AuthNone, ARMEndpoint: "https://10.0.0.1"}); err == nil {
		t.Fatal("auth none accepted for a non-loopback endpoint")
	}
}
