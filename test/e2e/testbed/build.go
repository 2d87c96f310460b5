package testbed

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/nicpool/nicpool/internal/testenv"
)

// BuildBinaries builds the operator, the agent and the CNI plugin from this
// source tree into dir, as Config.BinDir expects them.
func BuildBinaries(dir string) error {
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/nicpool-operator", "./cmd/nicpool-agent", "./cmd/nicpool")
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build binaries: %w\n%s", err, out)
	}
	return nil
}
