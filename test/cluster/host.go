package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// globalSysctls are the machine-wide (not per network namespace) settings a
// kubelet changes at start when protectKernelDefaults is false
// (setupKernelTunables). The cluster records them before the first kubelet
// starts and writes them back after the last one stopped.
var globalSysctls = []string{
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

type sysctlSnapshot map[string]string

func recordSysctls() (sysctlSnapshot, error) {
	s := sysctlSnapshot{}
	for _, name := range globalSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", name))
		if err != nil {
			return nil, fmt.Errorf("record sysctl %s: %w", name, err)
		}
		s[name] = strings.TrimSpace(string(v))
	}
	return s, nil
}

// restore writes back every value that differs now.
func (s sysctlSnapshot) restore() error {
	var errs []error
	for name, want := range s {
		p := filepath.Join("/proc/sys", name)
		cur, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(cur)) == want {
			continue
		}
		if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", name, want, err))
		}
	}
	return errors.Join(errs...)
}

// changed lists the sysctls whose value differs from the snapshot.
func (s sysctlSnapshot) changed() []string {
	var out []string
	for name, want := range s {
		cur, err := os.ReadFile(filepath.Join("/proc/sys", name))
		if err != nil || strings.TrimSpace(string(cur)) != want {
			out = append(out, fmt.Sprintf("%s=%s (was %s)", name, strings.TrimSpace(string(cur)), want))
		}
	}
	return out
}

// mountPoints are the host paths each node sees as its own: a bind mount of
// a per-node directory in the node's private mount namespace. kubelet and
// containerd (and the agent's hostPath volumes, resolved by containerd) use
// these fixed paths.
var mountPoints = []string{
	"/run",
	"/var/lib/kubelet",
	"/var/lib/containerd",
	"/var/log/pods",
	"/var/log/containers",
	"/var/lib/cni",
	"/opt/cni/bin",
	"/etc/cni/net.d",
	"/var/lib/nicpool",
}

// hostDirs creates the mount points (mountPoints for a node, runtimeMountPoints
// for a Runtime) the host lacks (a bind mount needs an existing directory) and
// returns the directories it created, deepest first, for removal at teardown.
func hostDirs(points []string) ([]string, error) {
	var created []string
	for _, mp := range points {
		// Record every missing ancestor, top down, before creating.
		var missing []string
		for d := mp; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); err == nil {
				break
			}
			missing = append(missing, d)
		}
		if len(missing) == 0 {
			continue
		}
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return created, fmt.Errorf("create mount point %s: %w", mp, err)
		}
		created = append(created, missing...) // deepest first
	}
	return created, nil
}

// removeHostDirs removes directories hostDirs created; each must be empty
// (the per-node content lives elsewhere, bind-mounted over it). While
// another cluster runs on the machine they stay: its nodes mount over them.
func removeHostDirs(dirs []string) error {
	if otherClusterRunning() {
		return nil
	}
	var errs []error
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

func readProcFile(pid int, name string) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	return string(data), err
}

// Leftovers lists what a torn-down cluster of this process left on the
// host: processes or cgroups under the nodes' cgroup roots, and mount
// points it created that still exist. Empty after a clean Close.
func Leftovers() []string {
	var out []string
	prefix := fmt.Sprintf("%s%d-", cgroupPrefix, os.Getpid())
	hs, _ := hierarchies()
	for _, h := range hs {
		entries, _ := os.ReadDir(h)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				out = append(out, fmt.Sprintf("cgroup %s/%s (processes %v)", h, e.Name(), cgroupPIDs(e.Name())))
			}
		}
	}
	return out
}

// otherClusterRunning reports whether a live process other than this one
// owns node cgroups.
func otherClusterRunning() bool {
	entries, _ := os.ReadDir(filepath.Join(cgroupV1Root, "pids"))
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		if pidStr == fmt.Sprint(os.Getpid()) {
			continue
		}
		if _, err := os.Stat("/proc/" + pidStr); err == nil {
			return true
		}
	}
	return false
}

// unmountLeaked lazily unmounts every mount of the host's namespace whose
// source is under dir, innermost first, and reports that there were any.
func unmountLeaked(dir string) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read host mounts: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(info), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[3], dir) {
			points = append(points, f[4])
		}
	}
	if len(points) == 0 {
		return nil
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", points[i], err))
		}
	}
	return errors.Join(append([]error{fmt.Errorf("node mounts had leaked into the host's mount namespace: %v", points)}, errs...)...)
}
