// Command nicpoolctl wires containers that no CNI-aware runtime manages:
// `nicpoolctl attach <netns-path|pid>` runs the installed nicpool network's
// CNI ADD for a container started with `docker run --network none`, and
// `nicpoolctl detach` its DEL. It is a binary of its own, not a mode of the
// nicpool plugin, because it links libcni (and with it net/http), which the
// plugin keeps out: the runtime starts the plugin for every container.
package main

import (
	"os"

	"github.com/nicpool/nicpool/cni/attach"
)

func main() {
	os.Exit(attach.Main(os.Args[1:], os.Stdout, os.Stderr))
}
