// Package nodeagent runs nicpool's node agent: options, and the wiring of
// the store, allocator, pool sync, socket server, GC, SNAT and CNI install.
package nodeagent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/gc"
	"github.com/nicpool/nicpool/nodeagent/imdspool"
	"github.com/nicpool/nicpool/nodeagent/install"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/server"
	"github.com/nicpool/nicpool/nodeagent/snat"
)

// Default ports of the agent's TCP endpoints. The agent runs in the host
// network, so they are node ports: outside the ones node-exporter (9100)
// and kubelet, kube-proxy and the API server use.
const (
	// DefaultMetricsPort serves /metrics.
	DefaultMetricsPort = "9545"
	// DefaultHealthPort serves the kubelet's probes on 127.0.0.1.
	DefaultHealthPort = "9546"
)

// Options are the agent's command-line settings; BindFlags documents each
// field through its flag's help text.
type Options struct {
	NodeName           string
	Kubeconfig         string
	SocketPath         string
	StateDir           string
	ResetState         bool
	Policy             pool.Config
	AllocTimeout       time.Duration
	GCGrace            time.Duration
	CNIGCMinAge        time.Duration
	NonMasqueradeCIDRs []string
	IPForwardSysctl    string
	SNATInterval       time.Duration
	CNIBinDir          string
	CNIConfDir         string
	CNIConfFileName    string
	CNIBinary          string
	CNIVersion         string
	MTU                int
	MetricsAddr        string
	HealthAddr         string
	Uninstall          bool
	ShowVersion        bool
	PoolSource         string
	Standalone         StandaloneOptions

	// ServiceEndpointPrefixes are --service-endpoint-prefixes' values.
	ServiceEndpointPrefixes []string
}

// DefaultOptions returns the defaults the flags start from.
func DefaultOptions() Options {
	return Options{
		NodeName:        os.Getenv("NODE_NAME"),
		SocketPath:      agentapi.DefaultSocketPath,
		StateDir:        "/var/lib/nicpool",
		Policy:          pool.DefaultConfig(),
		AllocTimeout:    ipam.DefaultAllocTimeout,
		GCGrace:         gc.DefaultGrace,
		CNIGCMinAge:     10 * time.Second,
		SNATInterval:    30 * time.Second,
		IPForwardSysctl: snat.DefaultIPForwardPath,
		CNIBinDir:       "/opt/cni/bin",
		CNIConfDir:      "/etc/cni/net.d",
		CNIConfFileName: "10-nicpool.conflist",
		CNIBinary:       "/usr/local/bin/nicpool",
		CNIVersion:      install.AutoCNIVersion,
		MetricsAddr:     "127.0.0.1:" + DefaultMetricsPort,
		HealthAddr:      "127.0.0.1:" + DefaultHealthPort,
		PoolSource:      PoolSourceNodeIPPool,
		Standalone: StandaloneOptions{
			IMDSEndpoint: imdspool.DefaultEndpoint,
			Resync:       10 * time.Second,
		},
	}
}

// BindFlags registers the options on fs.
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "name of this node and of its NodeIPPool (default $NODE_NAME)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file; in-cluster config when empty")
	fs.StringVar(&o.SocketPath, "socket", o.SocketPath, "unix socket the CNI plugin talks to")
	fs.StringVar(&o.StateDir, "state-dir", o.StateDir, "directory of the allocation record (0700)")
	fs.BoolVar(&o.ResetState, "reset-state", false, "if the allocation record is corrupt, move it aside and rebuild it from the host's pod routes (a healthy record is kept)")
	fs.IntVar(&o.Policy.WarmIPTarget, "warm-ip-target", o.Policy.WarmIPTarget, "free IPs to keep beyond those in use")
	fs.IntVar(&o.Policy.MinIPTarget, "min-ip-target", o.Policy.MinIPTarget, "IPs the node keeps even when idle")
	fs.IntVar(&o.Policy.BatchSize, "batch-size", o.Policy.BatchSize, "requests are multiples of this")
	fs.IntVar(&o.Policy.MaxIPs, "max-ips", o.Policy.MaxIPs, fmt.Sprintf("most IPs the node asks for (at most %d)", pool.MaxIPsPerNode))
	fs.DurationVar(&o.Policy.ReleaseCooldown, "release-cooldown", o.Policy.ReleaseCooldown, "how long an IP stays idle (and how long after a scale-up) before it is given back")
	fs.DurationVar(&o.AllocTimeout, "alloc-timeout", o.AllocTimeout, "how long an allocation waits for the pool to grow before answering try-again-later")
	fs.DurationVar(&o.GCGrace, "gc-grace", o.GCGrace, "how long a pod must be missing before its IP is released; at start, allocations without a veth younger than this are kept (their ADD may be in flight)")
	fs.DurationVar(&o.CNIGCMinAge, "cni-gc-min-age", o.CNIGCMinAge, "allocations younger than this survive the runtime's CNI GC (their ADD may be in flight)")
	fs.StringSliceVar(&o.NonMasqueradeCIDRs, "non-masquerade-cidrs", o.NonMasqueradeCIDRs, "destinations reached without SNAT besides the VNet (peered VNets, on-premises)")
	fs.StringArrayVar(&o.ServiceEndpointPrefixes, "service-endpoint-prefixes", o.ServiceEndpointPrefixes, "Service=cidr[,cidr...], repeatable: the public prefixes of an Azure service (for example Microsoft.Storage=<the Storage.<Region> service tag's prefixes>) reached without SNAT when the node's subnet has that service endpoint enabled (NodeIPPool status.subnetServiceEndpoints), so the service sees the pod's VNet address")
	fs.StringVar(&o.IPForwardSysctl, "ip-forward-sysctl", o.IPForwardSysctl, "the host's net.ipv4.ip_forward file the agent sets to 1 (routing pod traffic needs it); a container sees /proc/sys read-only, so the DaemonSet mounts the host's /proc/sys/net/ipv4 elsewhere and names the file there")
	fs.StringVar(&o.CNIBinDir, "cni-bin-dir", o.CNIBinDir, "host directory of CNI binaries")
	fs.StringVar(&o.CNIConfDir, "cni-conf-dir", o.CNIConfDir, "host directory of CNI configuration")
	fs.StringVar(&o.CNIBinary, "cni-binary", o.CNIBinary, "the nicpool CNI plugin inside the image, copied to --cni-bin-dir")
	fs.StringVar(&o.CNIVersion, "cni-version", o.CNIVersion, "cniVersion of the conflist: auto (the newest the node's container runtime and chained plugins speak) or an explicit version such as 1.0.0")
	fs.IntVar(&o.MTU, "mtu", o.MTU, "MTU of pod interfaces; 0 lets the plugin use the node's primary interface MTU")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", o.MetricsAddr, "host:port of the Prometheus /metrics endpoint, e.g. the node's IP (the DaemonSet passes $(NODE_IP)); 0.0.0.0:port listens on every node address; empty disables it")
	fs.StringVar(&o.HealthAddr, "health-addr", o.HealthAddr, "loopback host:port of the kubelet's probes ("+server.PathLive+", "+server.PathReady+"); empty disables it")
	// Kept so manifests that still pass it start; the value is unused.
	fs.String("introspection-addr", "", "ignored")
	_ = fs.MarkDeprecated("introspection-addr", "introspection is served on the agent's unix socket only (GET "+server.PathAllocations+"); the flag is ignored")
	fs.BoolVar(&o.Uninstall, "uninstall", false, "withdraw the CNI configuration, remove the SNAT chain and exit")
	fs.BoolVar(&o.ShowVersion, "version", false, "print the version and exit")
	o.bindStandaloneFlags(fs)
}

// Validate reports every invalid option.
func (o *Options) Validate() error {
	var errs []error
	if o.NodeName == "" && o.PoolSource == PoolSourceNodeIPPool {
		errs = append(errs, errors.New("--node-name (or $NODE_NAME) is required"))
	}
	errs = append(errs, o.validateStandalone()...)
	if err := o.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	for name, d := range map[string]time.Duration{"--alloc-timeout": o.AllocTimeout, "--gc-grace": o.GCGrace} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s must be positive", name, d))
		}
	}
	if o.Policy.WarmIPTarget == 0 && o.Policy.MinIPTarget == 0 {
		// The CNI config is installed only once the pool holds an IP; with
		// neither target the pool stays empty until a pod asks, which it
		// cannot do before the CNI config is installed.
		errs = append(errs, errors.New("--warm-ip-target and --min-ip-target are both 0: the node would never get its first IP"))
	}
	if err := loopbackAddr(o.HealthAddr); err != nil {
		errs = append(errs, fmt.Errorf("--health-addr: %w", err))
	}
	if err := deliberateAddr(o.MetricsAddr); err != nil {
		errs = append(errs, fmt.Errorf("--metrics-addr: %w", err))
	}
	if o.CNIGCMinAge < 0 {
		errs = append(errs, fmt.Errorf("--cni-gc-min-age %s must not be negative", o.CNIGCMinAge))
	}
	for _, c := range o.NonMasqueradeCIDRs {
		if p, err := netip.ParsePrefix(c); err != nil || !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("--non-masquerade-cidrs: %q is not an IPv4 CIDR", c))
		}
	}
	if _, err := parseServiceEndpointPrefixes(o.ServiceEndpointPrefixes); err != nil {
		errs = append(errs, err)
	}
	for name, p := range map[string]string{"--socket": o.SocketPath, "--state-dir": o.StateDir, "--cni-bin-dir": o.CNIBinDir, "--cni-conf-dir": o.CNIConfDir, "--cni-binary": o.CNIBinary, "--ip-forward-sysctl": o.IPForwardSysctl} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s %q must be an absolute path", name, p))
		}
	}
	if err := install.CheckCNIVersion(o.CNIVersion); err != nil {
		errs = append(errs, fmt.Errorf("--cni-version: %w", err))
	}
	if len(o.SocketPath) > 107 {
		errs = append(errs, fmt.Errorf("--socket %q is longer than a unix socket path may be (107 bytes)", o.SocketPath))
	}
	if o.MTU != 0 && (o.MTU < 576 || o.MTU > 9000) {
		errs = append(errs, fmt.Errorf("--mtu %d must be 0 (automatic) or between 576 and 9000", o.MTU))
	}
	return errors.Join(errs...)
}

// loopbackAddr accepts "" (disabled) or a host:port on a loopback address:
// the probes are the kubelet's business (it probes 127.0.0.1 on the host
// network), nobody else's.
func loopbackAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address", addr)
	}
	return nil
}

// deliberateAddr accepts "" (disabled) or a host:port naming its host: the
// agent runs in the host's network namespace, so ":port" would expose the
// endpoint on every node address by accident. "0.0.0.0:port" says so
// explicitly.
func deliberateAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse %q: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("%q names no host and would listen on every node address: give the node's IP (or 0.0.0.0 to mean every address)", addr)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("%q names no port", addr)
	}
	return nil
}
