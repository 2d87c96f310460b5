package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// Runtime is Debian's containerd and runc alone on one VM of the testbed,
// as on a VM without Kubernetes (test/standalone drives it with nerdctl):
// the machinery of a Node without kubelet and kube-proxy. containerd runs
// in the VM's network namespace and in a private mount namespace where a
// per-runtime directory is bind-mounted over each path of
// runtimeMountPoints, under a cgroup of its own that also holds the
// containers (nerdctl's --cgroup-parent, CgroupParent).
type Runtime struct {
	Name string
	VM   *testbed.VM
	// Dir holds the configuration, the log and the bind-mount sources.
	Dir string

	cgroup     string
	holder     *daemon
	containerd *daemon
	hostDirs   []string
}

// runtimeMountPoints are the host paths a Runtime sees as its own:
// containerd's state and socket (and runc's, the shims'), its root, and
// libcni's result cache, which nerdctl's CNI hook writes.
var runtimeMountPoints = []string{"/run", "/var/lib/containerd", "/var/lib/cni"}

// runtimeConfig is containerd 1.6 without the CRI plugin (no kubelet
// talks to it): socket and state in the runtime's own /run, root in its
// own /var/lib/containerd.
var runtimeConfig = template.Must(template.New("containerd").Parse(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{{.Socket}}"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
`))

// RuntimeSocket is containerd's socket as the runtime's processes see it.
const RuntimeSocket = "/run/containerd/containerd.sock"

var runtimeSeq atomic.Int64

// StartRuntime starts containerd on vm with its files under dir. Call
// Close when done, also after an error.
func StartRuntime(ctx context.Context, vm *testbed.VM, dir string) (*Runtime, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("a container runtime needs root (namespaces, mounts, cgroups)")
	}
	for _, p := range []string{"/usr/bin/containerd", "/usr/sbin/runc", "/usr/bin/ctr"} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrMissing, p)
		}
	}
	if err := cleanupStaleCgroups(); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("rt%d-%s", runtimeSeq.Add(1), vm.Name)
	r := &Runtime{Name: name, VM: vm, Dir: dir, cgroup: fmt.Sprintf("%s%d-%s", cgroupPrefix, os.Getpid(), name)}
	for _, mp := range runtimeMountPoints {
		if err := os.MkdirAll(filepath.Join(dir, mountDirName(mp)), 0o755); err != nil {
			return r, fmt.Errorf("create runtime directory: %w", err)
		}
	}
	var err error
	if r.hostDirs, err = hostDirs(runtimeMountPoints); err != nil {
		return r, err
	}
	r.holder = newDaemon(name+"-mountns", filepath.Join(dir, "mountns.log"), "sleep", "infinity")
	r.holder.ownMountNS = true
	r.containerd = newDaemon(name+"-containerd", filepath.Join(dir, "containerd.log"))
	if err := createCgroup(r.cgroup + "/daemons"); err != nil {
		return r, err
	}
	if err := createCgroup(r.cgroup + "/containers"); err != nil {
		return r, err
	}
	if err := vm.Do(r.holder.start); err != nil {
		return r, err
	}
	if err := joinCgroup(r.cgroup+"/daemons", r.holder.pid()); err != nil {
		return r, err
	}
	if err := checkPrivateMountNS(r.holder.pid()); err != nil {
		return r, fmt.Errorf("mount namespace of %s: %w", name, err)
	}
	for _, mp := range runtimeMountPoints {
		if _, err := r.Exec("mount", "--bind", filepath.Join(dir, mountDirName(mp)), mp); err != nil {
			return r, fmt.Errorf("bind-mount %s for %s: %w", mp, name, err)
		}
	}
	if err := checkHostMounts(dir); err != nil {
		return r, err
	}
	conf := filepath.Join(dir, "containerd.toml")
	if err := renderFile(conf, runtimeConfig, map[string]string{"Socket": RuntimeSocket}); err != nil {
		return r, err
	}
	r.containerd.argv = r.enter("containerd", "--config", conf)
	if err := r.containerd.start(); err != nil {
		return r, err
	}
	// Shims and containers are children of containerd: teardown finds
	// every process of the runtime in its cgroup.
	if err := joinCgroup(r.cgroup+"/daemons", r.containerd.pid()); err != nil {
		return r, err
	}
	return r, waitFor(ctx, 30*time.Second, name+"'s containerd to answer", func() error {
		_, err := r.Exec("ctr", "--address", RuntimeSocket, "version")
		return err
	})
}

// CgroupParent is the cgroup (cgroupfs, every v1 hierarchy) the runtime's
// containers must be put under, so that Close finds them.
func (r *Runtime) CgroupParent() string { return "/" + r.cgroup + "/containers" }

// Log is containerd's log file.
func (r *Runtime) Log() string { return r.containerd.logPath }

func (r *Runtime) enter(argv ...string) []string {
	return append([]string{"nsenter", "--target", strconv.Itoa(r.holder.pid()), "--mount", "--net", "--"}, argv...)
}

// Exec runs a command in the runtime's mount and network namespaces (as a
// process of the VM, for example nerdctl) and returns its combined output.
func (r *Runtime) Exec(argv ...string) (string, error) { return run(r.enter(argv...)...) }

// ExecContext is Exec bounded by ctx; the command's stdout and stderr are
// returned apart.
func (r *Runtime) ExecContext(ctx context.Context, argv ...string) (stdout string, err error) {
	full := r.enter(argv...)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errb.String()))
	}
	return string(out), nil
}

// ImportImage imports the image tarball file (of hack/test-images.sh) into
// the containerd namespace ns ("default" is nerdctl's).
func (r *Runtime) ImportImage(ctx context.Context, ns, file string) error {
	if _, err := r.ExecContext(ctx, "ctr", "--address", RuntimeSocket, "--namespace", ns, "images", "import", file); err != nil {
		return fmt.Errorf("import %s into %s: %w", file, r.Name, err)
	}
	return nil
}

// Close stops containerd, kills every process left in the runtime's cgroup
// (containers, shims, the mount namespace holder), which ends the private
// mount namespace and every mount in it, and removes the mount points it
// created on the host.
func (r *Runtime) Close() error {
	var errs []error
	if r.containerd != nil {
		r.containerd.stop(10 * time.Second)
	}
	errs = append(errs, killCgroup(r.cgroup, 30*time.Second))
	if r.holder != nil {
		r.holder.stop(time.Second)
	}
	errs = append(errs, unmountLeaked(r.Dir), removeHostDirs(r.hostDirs))
	return errors.Join(errs...)
}

// Image is one image tarball of hack/test-images.sh.
type Image struct {
	File, Ref string
}

// EchoImage is the echo workload's tarball in dir (bin/images when empty).
func EchoImage(dir string) (Image, error) {
	if dir == "" {
		var cfg Config
		cfg.Defaults()
		dir = cfg.ImagesDir
	}
	im, err := readImages(dir)
	if err != nil {
		return Image{}, err
	}
	return Image{File: filepath.Join(dir, "echo.tar"), Ref: im.echo}, nil
}

// CopyReferencePlugins copies the named CNI reference plugins of Debian's
// containernetworking-plugins into dir, as on a host where that package
// is installed (nerdctl checks for its default bridge network's).
func CopyReferencePlugins(dir string, names ...string) error {
	for _, p := range names {
		if err := copyFile(filepath.Join(hostCNIPluginDir, p), filepath.Join(dir, p), 0o755); err != nil {
			return err
		}
	}
	return nil
}
