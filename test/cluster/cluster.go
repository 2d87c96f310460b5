// Package cluster turns the simulated VNet of test/e2e/testbed into a real
// Kubernetes cluster: every VM namespace becomes a node running Debian's
// containerd and runc, kubelet and kube-proxy (iptables mode), the control
// plane gains kube-scheduler and kube-controller-manager, and nicpool is
// installed with `helm install` from the images the nodes imported. The VNet
// (fabric, sites, ARM) stays the testbed's layer; this package adds the
// Kubernetes layer on top of it. docs/testbed.md describes both.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// cgroupPrefix starts the cgroup root of every node, followed by the test
// process's ID, so that a killed run's leftovers can be found.
const cgroupPrefix = "npcluster-"

// Config sizes a cluster.
type Config struct {
	// Nodes is the number of VMs, each a node.
	Nodes int
	// WorkDir receives configuration, logs and every node's directories.
	WorkDir string
	// MaxPods is each kubelet's pod limit (default 300: above nicpool's 250
	// IPs per node, so that a full node is nicpool's limit, not kubelet's).
	MaxPods int
	// PutLatency is how long the simulated ARM keeps a NIC PUT in progress.
	PutLatency time.Duration
	// Values are extra `helm install --set` values for the nicpool chart.
	Values []string
	// Logf reports progress; nil discards it.
	Logf func(format string, args ...any)
	// Storage, when set, adds the VNet layer's storage site: a storage account's
	// public endpoint behind a firewall with virtual network rules.
	Storage *testbed.StorageConfig

	// Binaries; Defaults fills them from the repository's bin/.
	K8sBinDir  string // kube-apiserver, etcd, kubectl, kube-scheduler, kube-controller-manager
	NodeBinDir string // kubelet, kube-proxy
	ImagesDir  string // image tarballs and images.txt
	Helm       string
}

// Cluster is a running cluster on the simulated VNet.
type Cluster struct {
	cfg Config
	// TB is the VNet layer: fabric, sites, simulated ARM, API server.
	TB *testbed.Testbed
	// Env is the API server (also TB.Env).
	Env *testenv.Env
	// Clientset is an admin client.
	Clientset *kubernetes.Clientset
	// Nodes are the Kubernetes nodes, one per VM.
	Nodes []*Node

	pki               *pki
	images            images
	sysctls           sysctlSnapshot
	hostDirs          []string
	scheduler         *daemon
	controllerManager *daemon

	mu        sync.Mutex
	listeners []net.Listener
	cp        *testbed.Site
	userMu    sync.Mutex
	closeOnce sync.Once
	// apiServerLog receives kube-apiserver's output (envtest discards it),
	// so that a failed start can be diagnosed.
	apiServerLog *os.File
}

// Defaults fills the binary locations from the repository's bin/ directory
// and the defaults of the other fields.
func (cfg *Config) Defaults() {
	bin := filepath.Join(testenv.RepoRoot(), "bin")
	if cfg.K8sBinDir == "" {
		cfg.K8sBinDir, _ = testenv.AssetsDir()
		if cfg.K8sBinDir == "" {
			cfg.K8sBinDir = filepath.Join(bin, "k8s")
		}
	}
	if cfg.NodeBinDir == "" {
		cfg.NodeBinDir = filepath.Join(bin, "node")
	}
	if cfg.ImagesDir == "" {
		cfg.ImagesDir = filepath.Join(bin, "images")
	}
	if cfg.Helm == "" {
		cfg.Helm = filepath.Join(bin, "tools", "helm")
	}
	if cfg.MaxPods == 0 {
		cfg.MaxPods = 300
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
}

// ErrMissing is returned (wrapped) when a binary or image the cluster needs
// is not there; `make setup` and hack/test-images.sh build them.
var ErrMissing = errors.New("cluster binaries or images missing (run `make setup` and hack/test-images.sh)")

// Check reports which binaries and images are missing.
func (cfg Config) Check() error {
	var missing []string
	need := map[string][]string{
		cfg.K8sBinDir:  {"kube-apiserver", "etcd", "kubectl", "kube-scheduler", "kube-controller-manager"},
		cfg.NodeBinDir: {"kubelet", "kube-proxy"},
		cfg.ImagesDir:  {"images.txt"},
	}
	for dir, files := range need {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				missing = append(missing, filepath.Join(dir, f))
			}
		}
	}
	for _, p := range []string{cfg.Helm, "/usr/bin/containerd", "/usr/sbin/runc", "/usr/bin/ctr", filepath.Join(hostCNIPluginDir, "loopback")} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %v", ErrMissing, missing)
	}
	return nil
}

// Start builds the VNet, the control plane and the nodes, and waits until
// every node registered (NotReady: no pod network yet). Install nicpool
// with InstallNicpool. Call Close when done, also after an error.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	cfg.Defaults()
	if os.Geteuid() != 0 {
		return nil, errors.New("the cluster layer needs root (namespaces, mounts, cgroups)")
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if cfg.Nodes < 1 || cfg.Nodes > 10 {
		return nil, fmt.Errorf("cluster nodes must be 1..10, got %d", cfg.Nodes)
	}
	if err := cleanupStaleCgroups(); err != nil {
		cfg.Logf("Stale cgroups could not all be removed: %v", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	c = &Cluster{cfg: cfg}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.images, err = readImages(cfg.ImagesDir); err != nil {
		return c, err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"simulated VNet and API server", c.startVNet},
		{"control plane's network", c.startControlPlaneSite},
		{"kube-scheduler and kube-controller-manager", func(context.Context) error { return c.startControllers() }},
		{"nodes (containerd, kubelet, kube-proxy)", c.startNodes},
	}
	for _, s := range steps {
		cfg.Logf("Starting %s.", s.name)
		t0 := time.Now()
		if err := s.fn(ctx); err != nil {
			return c, fmt.Errorf("start %s: %w", s.name, err)
		}
		cfg.Logf("Started %s in %s.", s.name, time.Since(t0).Round(100*time.Millisecond))
	}
	return c, nil
}

func (c *Cluster) startVNet(ctx context.Context) error {
	tb, err := testbed.New(ctx, testbed.Config{
		VMs: c.cfg.Nodes, WorkDir: c.cfg.WorkDir, PutLatency: c.cfg.PutLatency, Logf: c.cfg.Logf,
		ControlPlane: c.startControlPlane, ExternalNodes: true, Storage: c.cfg.Storage,
	})
	if err != nil {
		return err
	}
	c.TB = tb
	cs, err := kubernetes.NewForConfig(c.Env.Config)
	if err != nil {
		return fmt.Errorf("build clientset: %w", err)
	}
	c.Clientset = cs
	return nil
}

// startControlPlaneSite connects the control plane's site to the fabric and
// forwards the API server's port there.
func (c *Cluster) startControlPlaneSite(context.Context) error {
	site, err := c.TB.AddSite(controlPlaneSite)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.cp = site
	c.mu.Unlock()
	u, err := url.Parse(c.Env.Config.Host)
	if err != nil {
		return fmt.Errorf("parse api server url: %w", err)
	}
	return c.forwardToHost(site.NS, net.JoinHostPort(site.HostIP, u.Port()), u.Host)
}

func (c *Cluster) cpSite() *testbed.Site {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cp
}

func (c *Cluster) startNodes(ctx context.Context) error {
	var err error
	if c.hostDirs, err = hostDirs(mountPoints); err != nil {
		return err
	}
	if c.sysctls, err = recordSysctls(); err != nil {
		return err
	}
	arm, err := url.Parse(c.TB.Sim.URL())
	if err != nil {
		return fmt.Errorf("parse armsim url: %w", err)
	}
	for _, vm := range c.TB.VMs {
		n, err := c.newNode(vm)
		if err != nil {
			return err
		}
		c.Nodes = append(c.Nodes, n)
		// The operator runs in a node's host network: ARM at the same
		// loopback address as on the host (its certificate names 127.0.0.1).
		if err := c.forwardToHost(vm.NS, arm.Host, arm.Host); err != nil {
			return err
		}
	}
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startNode(ctx, n)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.waitNodesRegistered(ctx, 2*time.Minute)
}

// Close stops every node and control-plane process, restores the global
// sysctls kubelet changed, removes the host directories it created, and
// closes the VNet layer (namespaces, API server). Calls after the first do
// nothing.
func (c *Cluster) Close() { c.closeOnce.Do(c.close) }

func (c *Cluster) close() {
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.stop(c.cfg)
		}()
	}
	wg.Wait()
	for _, d := range []*daemon{c.scheduler, c.controllerManager} {
		if d != nil {
			d.stop(10 * time.Second)
		}
	}
	if c.sysctls != nil {
		errs = append(errs, c.sysctls.restore())
	}
	// Node mounts live only in the nodes' private mount namespaces; should
	// one have reached the host's, it must not outlive the cluster.
	if c.cfg.WorkDir != "" {
		errs = append(errs, unmountLeaked(c.cfg.WorkDir))
	}
	errs = append(errs, removeHostDirs(c.hostDirs), c.closeListeners())
	if err := errors.Join(errs...); err != nil {
		c.cfg.Logf("Cluster teardown: %v", err)
	}
	if c.TB != nil {
		c.TB.Close()
	} else if c.Env != nil {
		_ = c.Env.Stop()
	}
	if c.apiServerLog != nil {
		_ = c.apiServerLog.Close()
	}
}

// Kubeconfig is an admin kubeconfig for kubectl.
// Empty until the testbed has started.
func (c *Cluster) Kubeconfig() string {
	if c.TB == nil {
		return ""
	}
	return c.TB.Kubeconfig()
}

// ChangedSysctls lists global sysctls that differ from before the cluster
// started (empty after Close when teardown restored them).
func (c *Cluster) ChangedSysctls() []string { return c.sysctls.changed() }
