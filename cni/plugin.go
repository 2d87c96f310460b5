// Package cni is the nicpool CNI plugin: it wires a pod into the VNet with
// an IP the node agent hands out (routed veth, /32 address, link-local
// gateway) and undoes it. One exported function per CNI verb; the binary in
// cmd/nicpool hands them to skel.
package cni

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Version is the plugin's release, set at build time with
// -ldflags "-X github.com/nicpool/nicpool/cni.Version=...".
var Version = "dev"

func init() {
	// Namespace switches apply to one OS thread; keep main on its thread
	// so the node namespace stays the one the runtime started us in.
	runtime.LockOSThread()
}

// VersionInfo lists the CNI specification versions the plugin implements.
func VersionInfo() version.PluginInfo {
	return version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
}

// About is the line printed when the binary runs without CNI_COMMAND.
func About() string {
	return "CNI plugin nicpool " + Version
}

// Funcs returns the verb implementations for skel.PluginMainFuncs, each
// turning an unexpected panic into a CNI error so the runtime always gets
// JSON (ADD's deferred rollback still runs while the panic unwinds).
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    recovered(CmdAdd),
		Del:    recovered(CmdDel),
		Check:  recovered(CmdCheck),
		Status: recovered(CmdStatus),
		GC:     recovered(CmdGC),
	}
}

func recovered(verb func(*skel.CmdArgs) error) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = types.NewError(types.ErrInternal, fmt.Sprintf("nicpool plugin bug: %v", r), string(debug.Stack()))
			}
		}()
		return verb(args)
	}
}
