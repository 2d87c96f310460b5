package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// Addresses of the cluster.
const (
	// ServiceCIDR is the ClusterIP range.
	ServiceCIDR = "10.96.0.0/16"
	// KubernetesServiceIP is the ClusterIP of the kubernetes Service.
	KubernetesServiceIP = "10.96.0.1"
	// DNSServiceIP is the ClusterIP of the kube-dns Service (CoreDNS).
	DNSServiceIP = "10.96.0.10"
)

// controlPlaneSite is the network of the API server as nodes and pods see
// it: a site of its own behind the fabric (a hub VNet peered with the
// cluster's, as self-managed clusters often have). The API server process
// runs on the host's loopback; a forwarder in this site's namespace makes it
// reachable at HostIP, the address the API server advertises, so that the
// kubernetes Service leads there through kube-proxy like on any cluster.
var controlPlaneSite = testbed.Site{Name: "cplane", CIDR: "10.251.0.0/24", HostIP: "10.251.0.10", Gateway: "10.251.0.1"}

// configureControlPlane is the testenv hook: it prepares the PKI and sets the
// API server flags a cluster with real nodes needs (node authorizer, the
// ServiceAccount admission plugin envtest leaves off, the advertised address
// and service range, the client certificate towards kubelets, and an egress
// proxy to reach them).
func (c *Cluster) configureControlPlane(e *envtest.Environment) error {
	p, err := newPKI(filepath.Join(c.cfg.WorkDir, "pki"))
	if err != nil {
		return err
	}
	c.pki = p
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(KubernetesServiceIP), net.ParseIP(controlPlaneSite.HostIP)}
	if err := p.issueServing(dns, ips); err != nil {
		return err
	}
	if err := p.issueKubeletClient(); err != nil {
		return err
	}
	if err := p.writeServiceAccountKeys(); err != nil {
		return err
	}
	egress, err := c.startEgressProxy()
	if err != nil {
		return err
	}
	api := e.ControlPlane.GetAPIServer()
	api.CertDir = p.dir
	api.SecureServing.CA = p.caPEM
	if c.apiServerLog == nil {
		// envtest restarts the process on a failed start: one file for all.
		f, err := os.OpenFile(filepath.Join(c.cfg.WorkDir, "kube-apiserver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("create the API server's log: %w", err)
		}
		c.apiServerLog = f
	}
	api.Out, api.Err = c.apiServerLog, c.apiServerLog
	args := api.Configure()
	args.Set("authorization-mode", "Node", "RBAC")
	args.Set("enable-admission-plugins", "NodeRestriction")
	// envtest disables the ServiceAccount plugin, so pods would get no token.
	args.Disable("disable-admission-plugins")
	args.Set("service-cluster-ip-range", ServiceCIDR)
	args.Set("advertise-address", controlPlaneSite.HostIP)
	args.Set("service-account-issuer", "https://kubernetes.default.svc.cluster.local")
	args.Set("service-account-key-file", p.path(saPublicKeyFile))
	args.Set("service-account-signing-key-file", p.path(saKeyFile))
	args.Set("kubelet-client-certificate", p.path(kubeletCertFile))
	args.Set("kubelet-client-key", p.path(kubeletKeyFile))
	args.Set("egress-selector-config-file", egress)
	args.Set("service-node-port-range", "30000-32767")
	// Kubelets are reached by IP through the egress proxy: node names do
	// not resolve in the simulated network.
	args.Set("kubelet-preferred-address-types", "InternalIP")
	return nil
}

// startControlPlane starts the API server through testenv with the hook.
func (c *Cluster) startControlPlane() (*testenv.Env, error) {
	env, err := testenv.StartWith(c.configureControlPlane)
	if err != nil {
		return nil, err
	}
	c.Env = env
	return env, nil
}

// startControllers starts kube-scheduler and kube-controller-manager on the
// host, as cluster admin over the loopback.
func (c *Cluster) startControllers() error {
	kubeconfig := c.TB.Kubeconfig()
	bin := c.Env.AssetsDir
	logDir := c.cfg.WorkDir
	c.scheduler = newDaemon("kube-scheduler", filepath.Join(logDir, "kube-scheduler.log"),
		filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--v=1")
	c.controllerManager = newDaemon("kube-controller-manager", filepath.Join(logDir, "kube-controller-manager.log"),
		filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--service-cluster-ip-range="+ServiceCIDR,
		"--root-ca-file="+c.pki.path(caFile),
		"--service-account-private-key-file="+c.pki.path(saKeyFile),
		"--use-service-account-credentials=false",
		"--kube-api-qps=100",
		"--kube-api-burst=200",
		"--concurrent-replicaset-syncs=5",
		"--node-monitor-grace-period=20s",
		"--v=1")
	for _, d := range []*daemon{c.scheduler, c.controllerManager} {
		if err := d.start(); err != nil {
			return err
		}
	}
	return nil
}

// writeEgressConfig writes the API server's egress selector configuration:
// traffic to nodes and pods ("cluster": kubelet logs, exec, port-forward)
// goes through an HTTP CONNECT proxy on a unix socket.
func writeEgressConfig(path, socket string) error {
	cfg := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, socket)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write egress selector configuration: %w", err)
	}
	return nil
}
