// Package standalone_test runs nicpool's agent on simulated Azure VMs without
// Kubernetes: the VNet testbed (fabric, sites, armsim with its instance
// metadata service) and no control plane. Containers are started by
// nerdctl with Debian's containerd (TestNerdctl, through vmhost), or are
// network namespaces wired with nicpoolctl attach, as on a Docker host.
package standalone_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

var binDir string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("SKIP: the standalone tests need root (network namespaces); CI runs them as root")
		return 0
	}
	dir, err := os.MkdirTemp("", "nicpool-standalone-bin")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := testbed.BuildBinaries(dir); err != nil {
		fmt.Println(err)
		return 1
	}
	binDir = dir
	return m.Run()
}
