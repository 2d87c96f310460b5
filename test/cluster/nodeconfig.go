package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// containerdConfig is Debian's containerd 1.6 configured for one node of
// many on a machine: its socket and state live in the node's own /run, its
// root in the node's own /var/lib/containerd (both bind mounts of the node's
// private mount namespace), cgroups through cgroupfs, and a sandbox image
// that was imported, because nothing can be pulled.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.SandboxImage}}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`))

// kubeletConfig is a kubelet 1.34 on a cgroup v1 host among several on one
// machine: cgroupfs under the node's own cgroup root, serving on the node's
// primary IP, clients authenticated by certificate only, DNS of the cluster,
// and image garbage collection and disk eviction out of the way (nothing can
// be pulled back).
var kubeletConfig = template.Must(template.New("kubelet").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{{.CgroupRoot}}
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
address: {{.NodeIP}}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
providerID: {{.ProviderID}}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: {{.ClientCAFile}}
authorization:
  mode: AlwaysAllow
clusterDNS: ["{{.DNSServiceIP}}"]
clusterDomain: cluster.local
resolvConf: {{.ResolvConf}}
podLogsDir: /var/log/pods
volumePluginDir: {{.VolumePluginDir}}
staticPodPath: ""
maxPods: {{.MaxPods}}
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 24h
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
failSwapOn: false
protectKernelDefaults: false
localStorageCapacityIsolation: false
nodeStatusReportFrequency: 10s
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 20s
runtimeRequestTimeout: 2m
shutdownGracePeriod: 0s
logging:
  verbosity: 1
`))

// kubeProxyConfig is kube-proxy in iptables mode inside one node's
// namespaces. Its conntrack settings are zero so that it leaves the
// machine-wide conntrack table size and timeouts alone.
var kubeProxyConfig = template.Must(template.New("kube-proxy").Parse(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {{.Kubeconfig}}
mode: iptables
hostnameOverride: {{.NodeName}}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: {{.ClusterCIDR}}
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  minSyncPeriod: 1s
  syncPeriod: 30s
logging:
  verbosity: 1
`))

// renderFile executes tmpl with data into path.
func renderFile(path string, tmpl *template.Template, data any) error {
	var b strings.Builder
	if err := tmpl.Execute(&b, data); err != nil {
		return fmt.Errorf("render %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
