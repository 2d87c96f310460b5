package snat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/coreos/go-iptables/iptables"
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
	requireRoot(t)
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
					`-A NICPOOL-SNAT ! -s 10.0.0.4/32 ! -o lo -m comment --comment "nicpool: SNAT to the node primary IP" -j SNAT --to-source 10.0.0.4` + sfx,
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

func TestSyncIsIdempotent(t *testing.T) {
	netns := newTestNS(t)
	inNS(t, netns, func() error {
		sys, err := iptables.New()
		if err != nil {
			return err
		}
		step := &stepIPT{IPTables: sys}
		cfg := cfgNew
		cfg.IPTables = step
		m, err := New(cfg)
		if err != nil {
			return err
		}
		if err := m.Sync(context.Background()); err != nil {
			return err
		}
		first := step.mutations
		for range 2 {
			if err := m.Sync(context.Background()); err != nil {
				return err
			}
		}
		// Only the no-op delete of an absent staging chain may run again.
		if again := step.mutations - first; again != 2 {
			return fmt.Errorf("two more Syncs ran %d changing commands, want 2 (the staging-chain cleanup)", again)
		}
		return checkFinal(sys, m, []string{"-P POSTROUTING ACCEPT", jumpLine(DefaultChainName)})
	})
}

func TestCleanup(t *testing.T) {
	netns := newTestNS(t)
	inNS(t, netns, func() error {
		sys, err := iptables.New()
		if err != nil {
			return err
		}
		if err := sys.Append(natTable, postrouting, foreignBefore...); err != nil {
			return err
		}
		cfg := cfgOld
		cfg.IPTables = sys
		m, err := New(cfg)
		if err != nil {
			return err
		}
		// Cleanup before anything exists, after a Sync, and again.
		for i, sync := range []bool{false, true, false} {
			if sync {
				if err := m.Sync(context.Background()); err != nil {
					return err
				}
				// A leftover staging chain and jump, as a crash leaves them.
				if err := sys.ClearChain(natTable, m.rules.staging); err != nil {
					return err
				}
				if err := sys.Insert(natTable, postrouting, 1, jumpSpec(m.rules.staging)...); err != nil {
					return err
				}
			}
			if err := m.Cleanup(); err != nil {
				return fmt.Errorf("cleanup %d: %w", i, err)
			}
			post, err := sys.List(natTable, postrouting)
			if err != nil {
				return err
			}
			if want := []string{"-P POSTROUTING ACCEPT", listLine(postrouting, foreignBefore)}; !slices.Equal(post, want) {
				return fmt.Errorf("cleanup %d: POSTROUTING = %q, want %q", i, post, want)
			}
			for _, c := range []string{m.rules.chain, m.rules.staging} {
				ok, err := sys.ChainExists(natTable, c)
				if err != nil {
					return fmt.Errorf("cleanup %d: look for chain %s: %w", i, c, err)
				}
				if ok {
					return fmt.Errorf("cleanup %d: chain %s exists, want it gone", i, c)
				}
			}
		}
		return nil
	})
}

func TestSyncHonoursContext(t *testing.T) {
	netns := newTestNS(t)
	inNS(t, netns, func() error {
		m, err := New(cfgOld)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err = m.Sync(ctx)
		if err == nil {
			return errors.New("Sync(cancelled) succeeded, want context.Canceled")
		}
		if !errors.Is(err, context.Canceled) {
			return fmt.Errorf("Sync(cancelled) = %w, want context.Canceled", err)
		}
		return nil
	})
}
