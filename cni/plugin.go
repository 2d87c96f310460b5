// Package cni is the nicpool CNI plugin: it wires a pod into the VNet with
// an IP the node agent hands out (routed veth, /32 address, link-local
// gateway) and undoes it. One exported function per CNI verb; the binary in
// cmd/nicpool hands them to skel.
package cni

import (
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
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

// Funcs returns the verb implementations for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: CmdAdd, Del: CmdDel, Check: CmdCheck, Status: CmdStatus, GC: CmdGC}
}
