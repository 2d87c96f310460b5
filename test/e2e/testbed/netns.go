// Package testbed builds the simulated Azure VNet out of network namespaces:
// a fabric that routes every IP configuration the ARM emulator holds to the VM
// that owns it, VM namespaces running the nicpool agent, pod namespaces wired
// by the nicpool CNI plugin, and namespaces standing for a peered VNet,
// on-premises and the internet. Nothing touches the host's own namespace:
// every address, route, sysctl and iptables rule lives in a namespace the
// testbed created, and Close deletes them all.
package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// namePrefix starts the name of every namespace a testbed creates, so that
// leftovers of a killed run can be found and removed.
const namePrefix = "npe2e-"

const netnsDir = "/var/run/netns"

// Namespace is a named network namespace the testbed created.
type Namespace struct {
	Name string
	ns.NetNS
}

// newNamespace creates the named namespace /var/run/netns/name with its
// loopback up. The calling goroutine's thread enters the new namespace while
// it is created and is restored before returning; if it cannot be restored
// the thread is left locked so that the Go runtime retires it.
func newNamespace(name string) (*Namespace, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("get current netns: %w", err)
	}
	defer func() { _ = orig.Close() }()
	h, err := netns.NewNamed(name)
	if err != nil {
		if serr := netns.Set(orig); serr == nil {
			runtime.UnlockOSThread()
		}
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	// Only the bind mount keeps the namespace; this handle is not needed.
	_ = h.Close()
	if err := netns.Set(orig); err != nil {
		return nil, fmt.Errorf("return from netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()

	handle, err := ns.GetNS(filepath.Join(netnsDir, name))
	if err != nil {
		_ = netns.DeleteNamed(name)
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	n := &Namespace{Name: name, NetNS: handle}
	if err := n.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("bring up lo in %s: %w", name, err), n.delete())
	}
	return n, nil
}

// Path is the namespace's bind-mount path, what CNI_NETNS names.
func (n *Namespace) Path() string { return filepath.Join(netnsDir, n.Name) }

func (n *Namespace) delete() error {
	_ = n.Close()
	if err := netns.DeleteNamed(n.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", n.Name, err)
	}
	return nil
}

// CleanupStale deletes namespaces left behind by testbeds that were killed
// before they could clean up (names starting with the testbed prefix whose
// owning process is gone).
func CleanupStale() error {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", netnsDir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, namePrefix) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(strings.TrimPrefix(name, namePrefix), "%d-", &pid); err == nil && processAlive(pid) {
			continue
		}
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete stale netns %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
