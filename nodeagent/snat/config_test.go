package snat

import (
	"strings"
	"testing"
)

// noIPT satisfies IPTables for tests that never reach iptables.
type noIPT struct{ IPTables }

func (noIPT) HasRandomFully() bool { return false }

func TestNewValidation(t *testing.T) {
	valid := func() Config {
		return Config{PrimaryIP: "10.0.0.4", NonMasqueradeCIDRs: []string{"10.0.0.0/16"}, IPTables: noIPT{}}
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // empty: valid
	}{
		{"valid", func(*Config) {}, ""},
		{"valid with everything", func(c *Config) {
			c.ChainName, c.PodCIDRs, c.Interface = "X_1-a", []string{"10.0.1.0/24"}, "eth0"
		}, ""},
		{"missing primary IP", func(c *Config) { c.PrimaryIP = "" }, `primary IP "": not an IPv4 address`},
		{"bad primary IP", func(c *Config) { c.PrimaryIP = "10.0.0.300" }, `primary IP "10.0.0.300"`},
		{"IPv6 primary IP", func(c *Config) { c.PrimaryIP = "fd00::4" }, `primary IP "fd00::4"`},
		{"no non-masquerade CIDR", func(c *Config) { c.NonMasqueradeCIDRs = nil }, "at least the VNet address space"},
		{"bad non-masquerade CIDR", func(c *Config) { c.NonMasqueradeCIDRs = []string{"10.0.0.0/33"} }, `non-masquerade CIDR "10.0.0.0/33"`},
		{"address instead of CIDR", func(c *Config) { c.NonMasqueradeCIDRs = []string{"10.0.0.1"} }, `non-masquerade CIDR "10.0.0.1"`},
		{"IPv6 pod CIDR", func(c *Config) { c.PodCIDRs = []string{"fd00::/64"} }, `pod CIDR "fd00::/64"`},
		{"chain name too long", func(c *Config) { c.ChainName = strings.Repeat("A", 24) }, "chain name"},
		{"chain name like a flag", func(c *Config) { c.ChainName = "-X" }, `chain name "-X"`},
		{"built-in chain name", func(c *Config) { c.ChainName = "postrouting" }, `chain name "postrouting"`},
		{"chain name with space", func(c *Config) { c.ChainName = "A B" }, `chain name "A B"`},
		{"interface with slash", func(c *Config) { c.Interface = "eth/0" }, `interface "eth/0"`},
		{"interface too long", func(c *Config) { c.Interface = "abcdefghijklmnop" }, "interface"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mutate(&cfg)
			m, err := New(cfg)
			if tt.wantErr == "" {
				if err != nil || m == nil {
					t.Fatalf("New() = %v, %v; want a manager", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "validate snat config: ") {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSaveQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain_-09", "plain_-09"},
		{"with space", `"with space"`},
		{`q"uote`, `"q\"uote"`},
		{"", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := saveQuote(tt.in); got != tt.want {
				t.Errorf("saveQuote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestNoSNATSourcesReturnFirst(t *testing.T) {
	cfg := Config{PrimaryIP: "10.0.0.4", NonMasqueradeCIDRs: []string{"10.0.0.0/16"}, NoSNATSources: []string{"10.0.0.9", "10.0.0.7", "10.0.0.9"}}
	r, err := cfg.validate(false)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	var lines []string
	for _, spec := range r.chainRules {
		lines = append(lines, listLine(r.chain, spec))
	}
	want := []string{
		`-A NICPOOL-SNAT -s 10.0.0.7/32 -m comment --comment "nicpool: no SNAT for a pod with its own public IP" -j RETURN`,
		`-A NICPOOL-SNAT -s 10.0.0.9/32 -m comment --comment "nicpool: no SNAT for a pod with its own public IP" -j RETURN`,
		`-A NICPOOL-SNAT -d 10.0.0.0/16 -m comment --comment "nicpool: no SNAT to non-masquerade CIDR" -j RETURN`,
	}
	if len(lines) != 4 || strings.Join(lines[:3], "\n") != strings.Join(want, "\n") || !strings.Contains(lines[3], "-j SNAT") {
		t.Errorf("chain =\n%s\nwant the pods with public IPs returned first, once each, then\n%s\nthen the SNAT rule", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	cfg.NoSNATSources = []string{"10.0.0.0/24"}
	if _, err := cfg.validate(false); err == nil || !strings.Contains(err.Error(), `no-SNAT source "10.0.0.0/24"`) {
		t.Errorf("a CIDR as a no-SNAT source: err = %v", err)
	}
}
