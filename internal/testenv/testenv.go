// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest, with binaries built by hack/control-plane.sh into bin/k8s) with the
// nicpool CRDs installed, for tests that need the API server's own validation,
// admission and watch semantics instead of a fake client.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// ErrNoControlPlane is returned when the kube-apiserver and etcd binaries are missing.
var ErrNoControlPlane = errors.New("kube-apiserver and etcd not found: run `make control-plane` (or set KUBEBUILDER_ASSETS)")

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client for Config with the nicpool scheme.
	Client client.Client
	// Scheme knows the built-in kinds and the nicpool kinds.
	Scheme *k8sruntime.Scheme
	// AssetsDir holds kube-apiserver, etcd and kubectl.
	AssetsDir string

	env *envtest.Environment
}

// RepoRoot is the root of the nicpool source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir returns where the control-plane binaries are, or ErrNoControlPlane.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), "bin", "k8s")
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", ErrNoControlPlane
		}
	}
	return dir, nil
}

// Scheme returns a scheme with the built-in and nicpool kinds.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = nicpoolv1.AddToScheme(s)
	return s
}

// Start starts etcd and kube-apiserver and installs the CRDs under config/crd/bases.
// Extra API server flags may be given as key=value pairs in apiServerArgs.
func Start(apiServerArgs ...string) (*Env, error) {
	return StartWith(func(e *envtest.Environment) error {
		args := e.ControlPlane.GetAPIServer().Configure()
		for _, kv := range apiServerArgs {
			k, v, _ := strings.Cut(kv, "=")
			args.Append(k, v)
		}
		return nil
	})
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Kubeconfig writes a kubeconfig for the admin user to path, for kubectl.
func (e *Env) Kubeconfig(path string) error {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "nicpool-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add kubeconfig user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("render kubeconfig: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// ControlPlane exposes the underlying envtest control plane (to add users
// with their own identities, for RBAC tests).
func (e *Env) ControlPlane() *envtest.Environment { return e.env }

// GVR of NodeIPPools, for dynamic clients.
var GVR = schema.GroupVersionResource{Group: nicpoolv1.GroupVersion.Group, Version: nicpoolv1.GroupVersion.Version, Resource: "nodeippools"}
