package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IMDSAddr is Azure's Instance Metadata Service address.
const IMDSAddr = "169.254.169.254"

// setupIMDS puts the IMDS address on the fabric's loopback: each VM's
// default route leads to the fabric, so requests to it arrive there with
// the VM's own source address.
func (tb *Testbed) setupIMDS() error {
	return tb.fabric.ns.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		return addAddr(lo, IMDSAddr+"/32")
	})
}

// serveIMDS serves armsim's IMDS to vm on a listener bound to the fabric's
// link towards vm (SO_BINDTODEVICE): only vm's packets reach it, and armsim
// also checks that the source address is one of vm's. So a VM sees its own
// NIC's metadata and no other's.
func (tb *Testbed) serveIMDS(ctx context.Context, vm *VM) error {
	var ln net.Listener
	err := tb.fabric.ns.Do(func(ns.NetNS) error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = errors.Join(
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
					unix.BindToDevice(int(fd), vm.fabricLink))
			})
			return errors.Join(err, serr)
		}}
		var err error
		ln, err = lc.Listen(ctx, "tcp4", net.JoinHostPort(IMDSAddr, "80"))
		return err
	})
	if err != nil {
		return fmt.Errorf("listen for %s's instance metadata requests: %w", vm.Name, err)
	}
	srv := &http.Server{Handler: tb.Sim.IMDSHandlerFor(vm.VMID), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.addCloser(srv.Close)
	return nil
}
