// Package attach is `nicpoolctl attach` and `nicpoolctl detach`: the CNI ADD and
// DEL of the installed nicpool network for a container that no CNI-aware
// runtime manages, such as a Docker container started with
// `docker run --network none` (Docker Engine has no CNI support). It runs
// the conflist the agent installed through libcni, exactly as containerd
// would, so the container gets the same VNet IP, veth and routes as a
// nerdctl or Kubernetes one.
package attach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Defaults of Options, the places the agent installs into and containerd
// reads from.
const (
	DefaultNetwork  = "nicpool"
	DefaultConfDir  = "/etc/cni/net.d"
	DefaultBinDir   = "/opt/cni/bin"
	DefaultCacheDir = "/var/lib/cni"
	DefaultIfName   = "eth0"
)

// Options say which container to wire and with which network.
type Options struct {
	// Target is the container's network namespace: a path (e.g.
	// /proc/PID/ns/net or /run/netns/NAME) or a process ID in it.
	Target string
	// ID names the attachment (CNI_CONTAINERID): the Docker container's ID.
	// When empty it is derived from the network namespace's inode, which
	// stays the same for the namespace's life.
	ID string
	// IfName is the interface inside the container.
	IfName string
	// Network is the CNI network's name (the conflist's "name").
	Network string
	// ConfDir, BinDirs and CacheDir are libcni's directories.
	ConfDir  string
	BinDirs  []string
	CacheDir string
}

func (o *Options) defaults() {
	if o.IfName == "" {
		o.IfName = DefaultIfName
	}
	if o.Network == "" {
		o.Network = DefaultNetwork
	}
	if o.ConfDir == "" {
		o.ConfDir = DefaultConfDir
	}
	if len(o.BinDirs) == 0 {
		o.BinDirs = []string{DefaultBinDir}
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir
	}
}

// NetNSPath resolves target (a process ID or a path) to a network
// namespace path that exists.
func NetNSPath(target string) (string, error) {
	if target == "" {
		return "", errors.New("no container given: pass its network namespace path or a process ID in it")
	}
	path := target
	if pid, err := strconv.Atoi(target); err == nil {
		if pid <= 0 {
			return "", fmt.Errorf("process ID %d is not valid", pid)
		}
		path = filepath.Join("/proc", strconv.Itoa(pid), "ns", "net")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("open network namespace of %s: %w", target, err)
	}
	return path, nil
}

// DefaultID derives an attachment ID from the network namespace's device
// and inode: the same for every path of one namespace (/proc/PID/ns/net of
// any process in it, a bind mount), different for another one.
func DefaultID(nsPath string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(nsPath, &st); err != nil {
		return "", fmt.Errorf("identify network namespace %s: %w", nsPath, err)
	}
	return fmt.Sprintf("netns-%x-%x", st.Dev, st.Ino), nil
}

// resolve fills in the namespace path and ID. For detach, a namespace that
// is gone is fine when the ID is given: the IP still has to go back.
func resolve(o *Options, mustExist bool) (string, error) {
	o.defaults()
	if o.Target == "" && !mustExist && o.ID != "" {
		return "", nil
	}
	nsPath, err := NetNSPath(o.Target)
	switch {
	case err != nil && (mustExist || o.ID == ""):
		return "", err
	case err != nil:
		return "", nil // gone: DEL with the ID alone releases the IP
	}
	if o.ID == "" {
		if o.ID, err = DefaultID(nsPath); err != nil {
			return "", err
		}
	}
	if strings.ContainsAny(o.ID, "/\x00") || len(o.ID) > 1024 {
		return "", fmt.Errorf("attachment id %q must not contain '/' and be at most 1024 characters", o.ID)
	}
	return nsPath, nil
}

func load(o Options) (*libcni.CNIConfig, *libcni.NetworkConfigList, error) {
	list, err := libcni.LoadConfList(o.ConfDir, o.Network)
	if err != nil {
		return nil, nil, fmt.Errorf("load cni network %q from %s (is nicpool-agent running and ready?): %w", o.Network, o.ConfDir, err)
	}
	return libcni.NewCNIConfigWithCacheDir(o.BinDirs, o.CacheDir, nil), list, nil
}

func runtimeConf(o Options, nsPath string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: o.ID, NetNS: nsPath, IfName: o.IfName, Args: [][2]string{{"IgnoreUnknown", "1"}}}
}

// Attach runs the network's ADD for the container and returns the result
// and the ID used. Attaching again with the same ID returns the same IP.
func Attach(ctx context.Context, o Options) (*current.Result, string, error) {
	nsPath, err := resolve(&o, true)
	if err != nil {
		return nil, "", err
	}
	c, list, err := load(o)
	if err != nil {
		return nil, "", err
	}
	res, err := c.AddNetworkList(ctx, list, runtimeConf(o, nsPath))
	if err != nil {
		return nil, o.ID, fmt.Errorf("attach %s (id %s) to network %s: %w", nsPath, o.ID, o.Network, err)
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, o.ID, fmt.Errorf("read the result of attaching %s: %w", nsPath, err)
	}
	return cur, o.ID, nil
}

// Detach runs the network's DEL: the container's interface is removed and
// its IP goes back to the agent. It succeeds when nothing is attached, and
// when the container's namespace is already gone (with ID given).
func Detach(ctx context.Context, o Options) (string, error) {
	nsPath, err := resolve(&o, false)
	if err != nil {
		return "", err
	}
	c, list, err := load(o)
	if err != nil {
		return "", err
	}
	if err := c.DelNetworkList(ctx, list, runtimeConf(o, nsPath)); err != nil {
		return o.ID, fmt.Errorf("detach id %s from network %s: %w", o.ID, o.Network, err)
	}
	return o.ID, nil
}

// Summary is one line saying what was attached.
func Summary(id string, res *current.Result) string {
	var ips []string
	for _, ip := range res.IPs {
		ips = append(ips, ip.Address.String())
	}
	return fmt.Sprintf("attached %s: %s", id, strings.Join(ips, ","))
}
