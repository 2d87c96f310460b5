package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/nicpool/nicpool/internal/testenv"
)

// BuildBinaries builds the operator, the agent and the CNI plugin from this
// source tree into dir, as Config.BinDir expects them.
func BuildBinaries(dir string) error {
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/nicpool-operator", "./cmd/nicpool-agent", "./cmd/nicpool", "./cmd/nicpoolctl")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build binaries: %w\n%s", err, out)
	}
	return nil
}

// RunTests is a TestMain for packages that drive the testbed: it skips (exit
// 0) when not root, needs the control plane (a failure under CI=true, a
// skip otherwise), builds the binaries into a temporary directory, sets
// *binDir to it for the tests, runs them and removes the directory. what
// names the suite in the skip message.
func RunTests(m *testing.M, what string, binDir *string) int {
	if os.Geteuid() != 0 {
		fmt.Printf("SKIP: %s needs root (network namespaces); CI runs it as root\n", what)
		return 0
	}
	if _, err := testenv.AssetsDir(); err != nil {
		fmt.Println(err)
		if os.Getenv("CI") == "" {
			return 0
		}
		return 1
	}
	dir, err := os.MkdirTemp("", "nicpool-testbed-bin-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	*binDir = dir
	if err := BuildBinaries(dir); err != nil {
		fmt.Println(err)
		return 1
	}
	return m.Run()
}
