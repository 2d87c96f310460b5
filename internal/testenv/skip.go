package testenv

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// Main runs a package's tests against one shared control plane: it starts it,
// stores it in *env, runs m and stops it. Without the binaries it fails in CI
// (CI=true) and otherwise skips the package with a clear message.
func Main(m *testing.M, env **Env, apiServerArgs ...string) {
	e, err := Start(apiServerArgs...)
	if err != nil {
		if errors.Is(err, ErrNoControlPlane) && os.Getenv("CI") == "" {
			fmt.Fprintln(os.Stderr, "SKIP: "+err.Error())
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop control plane:", err)
	}
	os.Exit(code)
}
