package snat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-iptables/iptables"
)

var errInjected = errors.New("injected failure")

// stepIPT wraps a sys iptables client: it counts the commands that change
// something, fails the failAt-th one (a crash at that step), and calls
// check after each of them.
type stepIPT struct {
	IPTables
	mutations int
	failAt    int
	// check returns what is wrong with the state after a command; the
	// first problem is kept in err. It must not call t.Fatal: it runs on
	// the namespace's goroutine, not the test's.
	check func() error
	err   error
}

func (s *stepIPT) mutate(f func() error) error {
	s.mutations++
	if s.mutations == s.failAt {
		return errInjected
	}
	err := f()
	if s.check != nil && s.err == nil {
		s.err = s.check()
	}
	return err
}

func (s *stepIPT) ClearChain(table, chain string) error {
	return s.mutate(func() error { return s.IPTables.ClearChain(table, chain) })
}

func (s *stepIPT) ClearAndDeleteChain(table, chain string) error {
	return s.mutate(func() error { return s.IPTables.ClearAndDeleteChain(table, chain) })
}

func (s *stepIPT) Append(table, chain string, spec ...string) error {
	return s.mutate(func() error { return s.IPTables.Append(table, chain, spec...) })
}

func (s *stepIPT) Insert(table, chain string, pos int, spec ...string) error {
	return s.mutate(func() error { return s.IPTables.Insert(table, chain, pos, spec...) })
}

func (s *stepIPT) DeleteIfExists(table, chain string, spec ...string) error {
	return s.mutate(func() error { return s.IPTables.DeleteIfExists(table, chain, spec...) })
}

var (
	cfgOld = Config{PrimaryIP: "10.0.0.4", NonMasqueradeCIDRs: []string{"10.0.0.0/16"}}
	cfgNew = Config{PrimaryIP: "10.0.0.4", NonMasqueradeCIDRs: []string{"10.0.0.0/16", "192.168.0.0/16"}, Interface: "eth0"}
)

// foreignBefore and foreignAfter stand for kube-proxy's and others' rules.
var (
	foreignBefore = []string{"-s", "172.17.0.0/16", "-j", "MASQUERADE"}
	foreignAfter  = []string{"-s", "172.18.0.0/16", "-j", "MASQUERADE"}
)

// checkComplete returns an error when a chain reachable from POSTROUTING
// holds none of the allowed rule sets: what a packet could see mid-update.
func checkComplete(ipt IPTables, allowed ...*Manager) error {
	post, err := ipt.List(natTable, postrouting)
	if err != nil {
		return fmt.Errorf("list POSTROUTING: %w", err)
	}
	for _, c := range []string{DefaultChainName, DefaultChainName + stagingSuffix} {
		if !slices.Contains(post, jumpLine(c)) {
			continue
		}
		lines, err := ipt.List(natTable, c)
		if err != nil {
			return fmt.Errorf("list %s: %w", c, err)
		}
		got := slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "-A ") })
		ok := false
		for _, m := range allowed {
			ok = ok || slices.Equal(got, m.wantLines(c))
		}
		if !ok {
			return fmt.Errorf("chain %s is reachable with a partial rule set: %q", c, got)
		}
	}
	return nil
}

// checkFinal checks the state a successful Sync of m leaves; wantPost is
// POSTROUTING's expected content.
func checkFinal(ipt IPTables, m *Manager, wantPost []string) error {
	ok, err := m.chainMatches(DefaultChainName)
	if err != nil {
		return fmt.Errorf("compare the chain with the wanted rules: %w", err)
	}
	if !ok {
		return errors.New("chain does not hold the wanted rules")
	}
	post, err := ipt.List(natTable, postrouting)
	if err != nil {
		return fmt.Errorf("list POSTROUTING: %w", err)
	}
	if !slices.Equal(post, wantPost) {
		return fmt.Errorf("POSTROUTING:\n got %q\nwant %q", post, wantPost)
	}
	staging, err := ipt.ChainExists(natTable, DefaultChainName+stagingSuffix)
	if err != nil {
		return fmt.Errorf("look for the staging chain: %w", err)
	}
	if staging {
		return errors.New("staging chain exists, want it gone")
	}
	return nil
}

// TestSyncCrashAtEveryStep fails each iptables command of a Sync in turn,
// from an empty table and from an older configuration: no packet may ever
// meet a partial chain, and the next Sync must converge.
func TestSyncCrashAtEveryStep(t *testing.T) {
	requireRoot(t)
	for _, tt := range []struct {
		name   string
		before *Config
	}{{"first install", nil}, {"config change", &cfgOld}} {
		t.Run(tt.name, func(t *testing.T) {
			// A Sync runs a few dozen commands; the bound stops a runaway.
			for failAt := 1; failAt < 200; failAt++ {
				if done := crashAt(t, tt.before, failAt); done {
					if failAt < 3 {
						t.Fatalf("sync finished after %d commands; the wrapper sees nothing", failAt-1)
					}
					return
				}
			}
			t.Fatal("sync never finished")
		})
	}
}

// crashAt runs one crash scenario in a fresh namespace; it reports whether
// Sync finished without reaching the failAt-th command.
func crashAt(t *testing.T, before *Config, failAt int) (done bool) {
	netns := newTestNS(t)
	inNS(t, netns, func() error {
		sys, err := iptables.New()
		if err != nil {
			return err
		}
		ctx := context.Background()
		if err := sys.Append(natTable, postrouting, foreignBefore...); err != nil {
			return err
		}
		var allowed []*Manager
		if before != nil {
			old := *before
			old.IPTables = sys
			mOld, err := New(old)
			if err != nil {
				return err
			}
			if err := mOld.Sync(ctx); err != nil {
				return err
			}
			allowed = append(allowed, mOld)
		}
		if err := sys.Append(natTable, postrouting, foreignAfter...); err != nil {
			return err
		}
		step := &stepIPT{IPTables: sys, failAt: failAt}
		cfg := cfgNew
		cfg.IPTables = step
		m, err := New(cfg)
		if err != nil {
			return err
		}
		allowed = append(allowed, m)
		step.check = func() error { return checkComplete(sys, allowed...) }
		err = m.Sync(ctx)
		done = step.mutations < failAt
		switch {
		case done && err != nil:
			return fmt.Errorf("failAt %d: Sync() after %d commands: %w, want success", failAt, step.mutations, err)
		case !done && err == nil:
			return fmt.Errorf("failAt %d: Sync() succeeded after %d commands, want the injected failure", failAt, step.mutations)
		case !done && !errors.Is(err, errInjected):
			return fmt.Errorf("failAt %d: Sync() after %d commands: %w, want the injected failure", failAt, step.mutations, err)
		}
		step.failAt = 0
		if err := m.Sync(ctx); err != nil {
			return fmt.Errorf("failAt %d: Sync after the crash: %w", failAt, err)
		}
		if step.err != nil {
			return fmt.Errorf("failAt %d: %w", failAt, step.err)
		}
		// The jump keeps its place when the configuration changes.
		wantPost := []string{"-P POSTROUTING ACCEPT", listLine(postrouting, foreignBefore), listLine(postrouting, foreignAfter), jumpLine(DefaultChainName)}
		if before != nil {
			wantPost[2], wantPost[3] = wantPost[3], wantPost[2]
		}
		if err := checkFinal(sys, m, wantPost); err != nil {
			return fmt.Errorf("failAt %d: %w", failAt, err)
		}
		return nil
	})
	return done
}
