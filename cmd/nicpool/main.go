// Command nicpool is the CNI plugin binary; the runtime runs it with
// CNI_COMMAND and friends in the environment and no arguments.
package main

import (
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/nicpool/nicpool/cni"
)

func main() {
	// Runtimes never pass arguments, so a flag means a person is asking.
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println(cni.About())
		return
	}
	skel.PluginMainFuncs(cni.Funcs(), cni.VersionInfo(), cni.About())
}
