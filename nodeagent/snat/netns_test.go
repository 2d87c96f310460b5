package snat

import (
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/coreos/go-iptables/iptables"
)

// newTestNS creates a network namespace removed when the test ends, or
// skips the test when not root.
func newTestNS(t *testing.T) ns.NetNS {
	t.Helper()
	requireRoot(t)
	netns, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = netns.Close()
		_ = testutils.UnmountNS(netns)
	})
	return netns
}

// requireRoot skips the test when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and run iptables in them")
	}
}

// inNS runs f inside netns on a locked thread, so iptables commands and
// sysctl writes apply to the namespace and never to the host.
func inNS(t *testing.T, netns ns.NetNS, f func() error) {
	t.Helper()
	if err := netns.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}

// listNS returns `iptables -t nat -S chain` inside netns, or nil when the
// chain does not exist.
func listNS(t *testing.T, netns ns.NetNS, chain string) []string {
	t.Helper()
	var out []string
	inNS(t, netns, func() error {
		ipt, err := iptables.New()
		if err != nil {
			return err
		}
		ok, err := ipt.ChainExists(natTable, chain)
		if err != nil || !ok {
			return err
		}
		out, err = ipt.List(natTable, chain)
		return err
	})
	return out
}
