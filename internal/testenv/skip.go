package testenv

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
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

// Eventually polls cond every 50 ms until it holds, failing the test with
// "timed out waiting until <what>" after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}
