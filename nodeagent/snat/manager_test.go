package snat

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// syncNS builds a Manager inside netns (so go-iptables probes the same
// iptables) and runs Sync there.
func syncNS(t *testing.T, netns ns.NetNS, cfg Config) *Manager {
	t.Helper()
	var m *Manager
	inNS(t, netns, func() error {
		var err error
		if m, err = New(cfg); err != nil {
			return err
		}
		return m.Sync(context.Background())
	})
	return m
}

func jumpLine(chain string) string {
	return `-A POSTROUTING -m comment --comment "nicpool: SNAT pod traffic leaving the VNet" -j ` + chain
}

// snatSuffix is what iptables prints after --to-source on this machine.
func snatSuffix(m *Manager) string {
	if m.ipt.HasRandomFully() {
		return " --random-fully"
	}
	return ""
}

func TestSyncRules(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		chain string
		want  func(sfx string) []string
	}{
		{
			name:  "all sources but the primary IP",
			cfg:   Config{PrimaryIP: "10.0.0.4", NonMasqueradeCIDRs: []string{"192.168.0.0/16", "10.0.0.0/16", "10.0.0.0/16"}},
			chain: "NICPOOL-SNAT",
			want: func(sfx string) []string {
				return []string{
					"-N NICPOOL-SNAT",
					`-A NICPOOL-SNAT -d 10.0.0.0/16 -m comment --comment "nicpool: no SNAT to non-masquerade CIDR" -j RETURN`,
					`-A NICPOOL-SNAT -d 192.168.0.0/16 -m comment --comment "nicpool: no SNAT to non-masquerade CIDR" -j RETURN`,
					`-A NICPOOL-SNAT ! -s 10.0.0.4/32 -m comment --comment "nicpool: SNAT to the node primary IP" -j SNAT --to-source 10.0.0.4` + sfx,
				}
			},
		},
		{
			name:  "pod CIDRs, interface and custom chain",
			cfg:   Config{ChainName: "MY-SNAT", PrimaryIP: "10.1.0.4", NonMasqueradeCIDRs: []string{"10.1.0.5/16"}, PodCIDRs: []string{"10.1.2.0/24", "10.1.1.0/24"}, Interface: "eth0"},
			chain: "MY-SNAT",
			want: func(sfx string) []string {
				return []string{
					"-N MY-SNAT",
					`-A MY-SNAT -d 10.1.0.0/16 -m comment --comment "nicpool: no SNAT to non-masquerade CIDR" -j RETURN`,
					`-A MY-SNAT -s 10.1.1.0/24 -o eth0 -m comment --comment "nicpool: SNAT to the node primary IP" -j SNAT --to-source 10.1.0.4` + sfx,
					`-A MY-SNAT -s 10.1.2.0/24 -o eth0 -m comment --comment "nicpool: SNAT to the node primary IP" -j SNAT --to-source 10.1.0.4` + sfx,
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			netns := newTestNS(t)
			m := syncNS(t, netns, tt.cfg)
			if got, want := listNS(t, netns, tt.chain), tt.want(snatSuffix(m)); !slices.Equal(got, want) {
				t.Errorf("chain %s:\n got %q\nwant %q", tt.chain, got, want)
			}
			if got, want := countLines(listNS(t, netns, "POSTROUTING"), jumpLine(tt.chain)), 1; got != want {
				t.Errorf("jumps to %s in POSTROUTING = %d, want %d", tt.chain, got, want)
			}
			if got := listNS(t, netns, tt.chain+"-NEXT"); got != nil {
				t.Errorf("staging chain left behind: %q", got)
			}
			var fwd []byte
			inNS(t, netns, func() (err error) {
				fwd, err = os.ReadFile(DefaultIPForwardPath)
				return err
			})
			if strings.TrimSpace(string(fwd)) != "1" {
				t.Errorf("ip_forward in the namespace = %q, want 1", fwd)
			}
		})
	}
}

func countLines(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}
