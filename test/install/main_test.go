// Package install_test checks what installs nicpool (the kustomize config and
// the Helm chart) against a real kube-apiserver: that it applies, that the
// agent's admission policy confines each agent to its own node's pool, and
// that RBAC grants the two ServiceAccounts no more than they need.
package install_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/testenv"
)

const (
	// namespace is where config/default installs nicpool.
	namespace = "nicpool-system"
	agentUser = "system:serviceaccount:" + namespace + ":nicpool-agent"
	opUser    = "system:serviceaccount:" + namespace + ":nicpool-operator"
)

var (
	env        *testenv.Env
	kubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests starts the control plane, writes an admin kubeconfig for kubectl
// and runs the tests; without the control-plane binaries it skips them
// (fails in CI), as testenv.Main does.
func runTests(m *testing.M) int {
	e, err := testenv.Start()
	if err != nil {
		if errors.Is(err, testenv.ErrNoControlPlane) && os.Getenv("CI") == "" {
			fmt.Fprintln(os.Stderr, "SKIP: "+err.Error())
			return 0
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env = e
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}()
	dir, err := os.MkdirTemp("", "nicpool-install-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create temp dir:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := e.Kubeconfig(kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "write kubeconfig:", err)
		return 1
	}
	return m.Run()
}

// root is the repository root.
func root() string { return testenv.RepoRoot() }

// tool returns the path of a tool under bin/, skipping the test (failing it
// in CI) when it has not been built.
func tool(t *testing.T, rel string, how string) string {
	t.Helper()
	p := filepath.Join(root(), rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: %s", rel, how)
		}
		t.Skipf("%s is missing: %s", rel, how)
	}
	return p
}

func kubectlPath(t *testing.T) string {
	return tool(t, "bin/k8s/kubectl", "run hack/control-plane.sh")
}

func helmPath(t *testing.T) string {
	return tool(t, "bin/tools/helm", "run hack/tools.sh helm")
}

// result is what a command printed and how it ended.
type result struct {
	stdout, stderr string
	err            error
}

// run runs name with args (and stdin, if any) from the repository root with
// the test kubeconfig, within a minute.
func run(t *testing.T, stdin []byte, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = root()
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "HELM_CACHE_HOME="+t.TempDir(),
		"HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir(), "KUBECACHEDIR="+t.TempDir())
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

// mustRun is run that fails the test when the command fails.
func mustRun(t *testing.T, stdin []byte, name string, args ...string) string {
	t.Helper()
	r := run(t, stdin, name, args...)
	if r.err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

// exitCode is the exit status of a finished command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

var (
	installOnce sync.Once
	installErr  string
)

// installDefault applies config/default for real, once per package, for the
// tests that need nicpool installed (policy, RBAC).
func installDefault(t *testing.T) {
	t.Helper()
	kubectl := kubectlPath(t)
	installOnce.Do(func() {
		r := run(t, nil, kubectl, "apply", "--server-side", "--field-manager=install-test", "-k", "config/default")
		if r.err != nil {
			installErr = fmt.Sprintf("kubectl apply --server-side -k config/default: %v\n%s", r.err, r.stderr)
		}
	})
	if installErr != "" {
		t.Fatal(installErr)
	}
}
