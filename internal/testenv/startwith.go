package testenv

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// ControlPlaneStartTimeout is how long etcd and kube-apiserver each have to
// become ready; KUBEBUILDER_CONTROLPLANE_START_TIMEOUT does not apply.
const ControlPlaneStartTimeout = 3 * time.Minute

// StartWith starts etcd and kube-apiserver with the CRDs installed, after
// configure has adjusted the envtest environment: API server flags that
// must replace envtest's defaults (not only add to them), its certificate
// directory, its serving address. A real-node cluster (test/cluster) needs
// that; Start covers every other test.
func StartWith(configure func(*envtest.Environment) error) (*Env, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's global logger; without one
	// it prints a warning with a stack trace.
	ctrllog.SetLogger(logr.Discard())
	s := Scheme()
	e := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                s,
		// envtest gives etcd and kube-apiserver 20 s each to become ready,
		// then restarts them, 5 times: with make test's packages in
		// parallel on 2 cores (load average ~200 seen) the API server
		// needed longer every time and the e2e and cluster packages failed
		// to start. Ready in time is what matters here, not fast.
		ControlPlaneStartTimeout: ControlPlaneStartTimeout,
	}
	if configure != nil {
		if err := configure(e); err != nil {
			return nil, fmt.Errorf("configure envtest control plane: %w", err)
		}
	}
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest control plane from %s: %w", dir, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("build client: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: s, AssetsDir: dir, env: e}, nil
}
