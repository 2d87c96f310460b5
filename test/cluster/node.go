package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// Node is a Kubernetes node on one VM of the testbed: containerd, kubelet
// and kube-proxy in the VM's network namespace and in a private mount
// namespace of their own, where a per-node directory is bind-mounted over
// each host path they hard-code (mountPoints), under a cgroup root of their
// own.
type Node struct {
	Name string
	VM   *testbed.VM
	// Dir holds the node's configuration, logs and bind-mount sources.
	Dir string

	cgroup     string // relative cgroup path of the node (kubelet's cgroupRoot)
	holder     *daemon
	containerd *daemon
	kubelet    *daemon
	kubeProxy  *daemon
}

// Logs are the node's daemon log files.
func (n *Node) Logs() []string {
	return []string{n.containerd.logPath, n.kubelet.logPath, n.kubeProxy.logPath}
}

// HostPath is where the node's view of path (one of mountPoints or below
// it) lives on the host.
func (n *Node) HostPath(path string) string {
	for _, mp := range mountPoints {
		if rest, ok := strings.CutPrefix(path, mp); ok && (rest == "" || rest[0] == '/') {
			return filepath.Join(n.Dir, mountDirName(mp), rest)
		}
	}
	return path
}

func mountDirName(mp string) string { return "root" + strings.ReplaceAll(mp, "/", "_") }

func (n *Node) socket() string { return n.HostPath("/run/containerd/containerd.sock") }

// enter is the nsenter prefix that runs a command in the node's mount and
// network namespaces.
func (n *Node) enter(argv ...string) []string {
	return append([]string{"nsenter", "--target", strconv.Itoa(n.holder.pid()), "--mount", "--net", "--"}, argv...)
}

// Exec runs a command in the node's namespaces (as a process of the node,
// for example `ctr` or `iptables`) and returns its output.
func (n *Node) Exec(argv ...string) (string, error) { return run(n.enter(argv...)...) }

// IPForward reads net.ipv4.ip_forward in the node's network namespace.
func (n *Node) IPForward() (string, error) {
	out, err := n.Exec("cat", "/proc/sys/net/ipv4/ip_forward")
	return strings.TrimSpace(out), err
}

// SetIPForward writes net.ipv4.ip_forward in the node's network namespace
// (only there: the sysctl is per network namespace).
func (n *Node) SetIPForward(v string) error {
	if _, err := n.Exec("sh", "-c", "echo "+v+" > /proc/sys/net/ipv4/ip_forward"); err != nil {
		return fmt.Errorf("set ip_forward=%s on %s: %w", v, n.Name, err)
	}
	return nil
}

func (c *Cluster) newNode(vm *testbed.VM) (*Node, error) {
	n := &Node{Name: vm.Name, VM: vm, Dir: filepath.Join(c.cfg.WorkDir, "nodes", vm.Name),
		cgroup: fmt.Sprintf("%s%d-%s", cgroupPrefix, os.Getpid(), vm.Name)}
	// The testbed's helpers (AgentAllocations) find the agent's socket here.
	vm.SocketPath = n.HostPath("/run/nicpool/agent.sock")
	for _, mp := range mountPoints {
		if err := os.MkdirAll(filepath.Join(n.Dir, mountDirName(mp)), 0o755); err != nil {
			return nil, fmt.Errorf("create node directory: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(n.Dir, "etc", "volume-plugins"), 0o755); err != nil {
		return nil, fmt.Errorf("create node directory: %w", err)
	}
	log := func(name string) string { return filepath.Join(n.Dir, name+".log") }
	n.holder = newDaemon(n.Name+"-mountns", log("mountns"), "sleep", "infinity")
	n.holder.ownMountNS = true
	// The others' argv are set in start, once the holder's PID is known.
	n.containerd = newDaemon(n.Name+"-containerd", log("containerd"))
	n.kubelet = newDaemon(n.Name+"-kubelet", log("kubelet"))
	n.kubeProxy = newDaemon(n.Name+"-kube-proxy", log("kube-proxy"))
	return n, nil
}

// start brings the node up to a running kubelet; the node registers itself
// and stays NotReady until a CNI configuration appears.
func (c *Cluster) startNode(ctx context.Context, n *Node) error {
	if err := createCgroup(n.cgroup + "/daemons"); err != nil {
		return err
	}
	if err := n.VM.Do(n.holder.start); err != nil {
		return err
	}
	if err := joinCgroup(n.cgroup+"/daemons", n.holder.pid()); err != nil {
		return err
	}
	if err := checkPrivateMountNS(n.holder.pid()); err != nil {
		return fmt.Errorf("mount namespace of %s: %w", n.Name, err)
	}
	for _, mp := range mountPoints {
		src := filepath.Join(n.Dir, mountDirName(mp))
		argv := []string{"nsenter", "--target", strconv.Itoa(n.holder.pid()), "--mount", "--", "mount", "--bind", src, mp}
		if _, err := run(argv...); err != nil {
			return fmt.Errorf("bind-mount %s on %s: %w", mp, n.Name, err)
		}
	}
	if err := checkHostMounts(n.Dir); err != nil {
		return err
	}
	if err := c.writeNodeConfig(n); err != nil {
		return err
	}
	etc := filepath.Join(n.Dir, "etc")
	n.containerd.argv = n.enter("containerd", "--config", filepath.Join(etc, "containerd.toml"))
	if err := c.startNodeDaemon(n, n.containerd); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, n.Name+"'s containerd to answer", func() error {
		_, err := run("ctr", "--address", n.socket(), "version")
		return err
	}); err != nil {
		return err
	}
	if err := c.importImages(ctx, n); err != nil {
		return err
	}
	// A fresh Linux VM does not forward IPv4: the agent must turn it on,
	// from its container whose own /proc/sys is read-only.
	if err := n.SetIPForward("0"); err != nil {
		return err
	}
	n.kubelet.argv = n.enter(filepath.Join(c.cfg.NodeBinDir, "kubelet"),
		"--config="+filepath.Join(etc, "kubelet.yaml"),
		"--kubeconfig="+filepath.Join(etc, "kubelet.kubeconfig"),
		"--hostname-override="+n.Name,
		"--node-ip="+n.VM.PrimaryIP,
		"--node-labels=nicpool.io/test-node=true")
	if err := c.startNodeDaemon(n, n.kubelet); err != nil {
		return err
	}
	n.kubeProxy.argv = n.enter(filepath.Join(c.cfg.NodeBinDir, "kube-proxy"), "--config="+filepath.Join(etc, "kube-proxy.yaml"))
	return c.startNodeDaemon(n, n.kubeProxy)
}

func (c *Cluster) startNodeDaemon(n *Node, d *daemon) error {
	if err := d.start(); err != nil {
		return err
	}
	// Children (containerd's shims and so the containers' parents) inherit
	// the cgroup, so teardown finds every process of the node there.
	return joinCgroup(n.cgroup+"/daemons", d.pid())
}

func (c *Cluster) writeNodeConfig(n *Node) error {
	etc := filepath.Join(n.Dir, "etc")
	node, err := c.addUser(envtest.User{Name: "system:node:" + n.Name, Groups: []string{"system:nodes"}})
	if err != nil {
		return fmt.Errorf("credentials of node %s: %w", n.Name, err)
	}
	proxy, err := c.addUser(envtest.User{Name: "system:kube-proxy"})
	if err != nil {
		return fmt.Errorf("credentials of kube-proxy on %s: %w", n.Name, err)
	}
	for file, user := range map[string]*envtest.AuthenticatedUser{"kubelet.kubeconfig": node, "kube-proxy.kubeconfig": proxy} {
		data, err := user.KubeConfig()
		if err != nil {
			return fmt.Errorf("render %s: %w", file, err)
		}
		if err := os.WriteFile(filepath.Join(etc, file), data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
	}
	resolv := filepath.Join(etc, "resolv.conf")
	// The simulated internet has no DNS server; this address is in its
	// documentation range and never leaves the machine.
	if err := os.WriteFile(resolv, []byte("nameserver 203.0.113.53\n"), 0o644); err != nil {
		return fmt.Errorf("write resolv.conf: %w", err)
	}
	if err := renderFile(filepath.Join(etc, "containerd.toml"), containerdConfig, map[string]string{"SandboxImage": c.images.sandbox}); err != nil {
		return err
	}
	if err := renderFile(filepath.Join(etc, "kubelet.yaml"), kubeletConfig, map[string]any{
		"CgroupRoot": n.cgroup, "NodeIP": n.VM.PrimaryIP, "ProviderID": "azure://" + n.VM.VMID,
		"ClientCAFile": c.pki.path(caFile), "DNSServiceIP": DNSServiceIP, "ResolvConf": resolv,
		"VolumePluginDir": filepath.Join(etc, "volume-plugins"), "MaxPods": c.cfg.MaxPods,
	}); err != nil {
		return err
	}
	if err := renderFile(filepath.Join(etc, "kube-proxy.yaml"), kubeProxyConfig, map[string]string{
		"Kubeconfig": filepath.Join(etc, "kube-proxy.kubeconfig"), "NodeName": n.Name, "ClusterCIDR": testbed.VNetCIDR,
	}); err != nil {
		return err
	}
	// containerd 1.6 sets up each pod's loopback with the reference plugin
	// from its CNI bin directory; the agent installs nicpool there later.
	for _, p := range []string{"loopback", "portmap", "bandwidth"} {
		if err := copyFile(filepath.Join(hostCNIPluginDir, p), filepath.Join(n.HostPath("/opt/cni/bin"), p), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// hostCNIPluginDir is where Debian's containernetworking-plugins installs
// the reference plugins.
const hostCNIPluginDir = "/usr/lib/cni"

// stop tears the node down: kube-proxy removes its rules, kubelet stops,
// then every process left in the node's cgroups (containers, shims,
// containerd, the mount namespace holder) is killed, which also ends the
// private mount namespace and with it every mount made inside.
func (n *Node) stop(cfg Config) error {
	var errs []error
	n.kubeProxy.stop(5 * time.Second)
	if n.holder.running() {
		if _, err := n.Exec(filepath.Join(cfg.NodeBinDir, "kube-proxy"), "--cleanup"); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy --cleanup on %s: %w", n.Name, err))
		}
	}
	n.kubelet.stop(10 * time.Second)
	n.containerd.stop(10 * time.Second)
	if err := killCgroup(n.cgroup, 30*time.Second); err != nil {
		errs = append(errs, err)
	}
	n.holder.stop(time.Second)
	return errors.Join(errs...)
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// waitFor polls check until it succeeds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s: %w", timeout, what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkPrivateMountNS makes sure pid's mount namespace is not the host's
// and propagates nothing to it, before anything is mounted there: a bind
// mount over /run in the host's namespace would hide the machine's /run.
func checkPrivateMountNS(pid int) error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return fmt.Errorf("read own mount namespace: %w", err)
	}
	other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return fmt.Errorf("read mount namespace of %d: %w", pid, err)
	}
	if self == other {
		return fmt.Errorf("process %d shares the host's mount namespace", pid)
	}
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return fmt.Errorf("read mounts of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) > 6 && f[4] == "/" && strings.Contains(strings.Join(f[6:], " "), "shared:") {
			return fmt.Errorf("the root mount of process %d still propagates to the host", pid)
		}
	}
	return nil
}

// checkHostMounts fails if a mount of dir is visible in the host's mount
// namespace (it must exist only in the node's private one).
func checkHostMounts(dir string) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read host mounts: %w", err)
	}
	for _, line := range strings.Split(string(info), "\n") {
		if strings.Contains(line, dir) {
			return fmt.Errorf("a node mount leaked into the host's mount namespace: %s", line)
		}
	}
	return nil
}

// addUser issues a client certificate; envtest's CA is not safe for
// concurrent use (its serial counter), and nodes start in parallel.
func (c *Cluster) addUser(u envtest.User) (*envtest.AuthenticatedUser, error) {
	c.userMu.Lock()
	defer c.userMu.Unlock()
	return c.Env.ControlPlane().AddUser(u, nil)
}
