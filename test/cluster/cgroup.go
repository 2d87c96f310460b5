package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupV1Root is where the host mounts its cgroup v1 hierarchies.
const cgroupV1Root = "/sys/fs/cgroup"

// hierarchies lists the mounted cgroup v1 hierarchies (directories of
// /sys/fs/cgroup holding a cgroup.procs file).
func hierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupV1Root)
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	var hs []string
	for _, e := range entries {
		p := filepath.Join(cgroupV1Root, e.Name())
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			continue // cpu,cpuacct style symlinks
		}
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			hs = append(hs, p)
		}
	}
	if len(hs) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy under /sys/fs/cgroup: the cluster layer needs a cgroup v1 host")
	}
	return hs, nil
}

// createCgroup creates name (a path relative to each hierarchy's root) in
// every hierarchy. A new cpuset cgroup starts without CPUs or memory nodes,
// so it gets its parent's.
func createCgroup(name string) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		p := filepath.Join(h, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", p, err)
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			// Each level from the top down needs the value before a
			// process can join below it.
			rel := strings.Split(name, "/")
			for i := range rel {
				dir := filepath.Join(append([]string{h}, rel[:i+1]...)...)
				parent := filepath.Dir(dir)
				v, err := os.ReadFile(filepath.Join(parent, f))
				if err != nil {
					return fmt.Errorf("read %s of %s: %w", f, parent, err)
				}
				cur, _ := os.ReadFile(filepath.Join(dir, f))
				if strings.TrimSpace(string(cur)) != "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return fmt.Errorf("write %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

// joinCgroup moves pid into name in every hierarchy; its later children
// start there too.
func joinCgroup(name string, pid int) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		p := filepath.Join(h, name, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move %d into %s: %w", pid, p, err)
		}
	}
	return nil
}

// cgroupPIDs lists every process in name or below it, in any hierarchy.
func cgroupPIDs(name string) []int {
	hs, err := hierarchies()
	if err != nil {
		return nil
	}
	seen := map[int]bool{}
	for _, h := range hs {
		_ = filepath.WalkDir(filepath.Join(h, name), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil //nolint:nilerr // a cgroup removed during the walk has no processes left
			}
			data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil //nolint:nilerr // as above
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					seen[pid] = true
				}
			}
			return nil
		})
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// killCgroup SIGKILLs every process in name and below until none is left
// (containers, their shims and the node's daemons all live there), then
// removes the cgroups depth first in every hierarchy.
func killCgroup(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := cgroupPIDs(name)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes left in cgroup %s after %s: %v", name, timeout, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return removeCgroup(name, deadline)
}

func removeCgroup(name string, deadline time.Time) error {
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		root := filepath.Join(h, name)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// Deepest first: a cgroup with children cannot be removed.
		slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, d := range dirs {
			for {
				err := os.Remove(d)
				if err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				// An exited process can hold its cgroup a moment longer.
				if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
					errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return errors.Join(errs...)
}

// cleanupStaleCgroups kills and removes the cgroups of clusters whose test
// process died without tearing down (names start with the prefix and the
// owning process ID).
func cleanupStaleCgroups() error {
	entries, err := os.ReadDir(filepath.Join(cgroupV1Root, "pids"))
	if err != nil {
		return nil //nolint:nilerr // no pids hierarchy: nothing of ours can be there
	}
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidStr); err == nil {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				continue
			}
		}
		if err := killCgroup(e.Name(), 30*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
