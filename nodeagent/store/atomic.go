package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Steps of an atomic write, in order; crashHook sees each before it runs.
const (
	stepCreateTemp = "create-temp"
	stepWrite      = "write"
	stepFsync      = "fsync"
	stepClose      = "close"
	stepRename     = "rename"
	stepFsyncDir   = "fsync-dir"
	stepDone       = "done"
)

// writeSteps lists the steps so tests can crash at each one.
var writeSteps = []string{stepCreateTemp, stepWrite, stepFsync, stepClose, stepRename, stepFsyncDir, stepDone}

// tempSuffix marks a temp file; leftovers from a crash are removed at open.
const tempSuffix = ".tmp"

// writeFileAtomic replaces path with data so that after a crash at any point
// the file holds either its old or its new content: write a temp file in the
// same directory, fsync it, rename it over path, fsync the directory. hook,
// when not nil, runs before each step; an error from it aborts the write
// there, leaving whatever a crash would leave.
func writeFileAtomic(path string, data []byte, hook func(step string) error) error {
	step := func(name string) error {
		if hook == nil {
			return nil
		}
		return hook(name)
	}
	dir := filepath.Dir(path)
	if err := step(stepCreateTemp); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*"+tempSuffix)
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	if err := writeSync(f, data, step); err != nil {
		return err
	}
	if err := step(stepRename); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	if err := step(stepFsyncDir); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return step(stepDone)
}

// writeSync writes, fsyncs and closes f; on a real (not injected) error it
// removes the temp file.
func writeSync(f *os.File, data []byte, step func(string) error) error {
	tmp := f.Name()
	fail := func(what string, err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("%s %s: %w", what, tmp, err)
	}
	if err := step(stepWrite); err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		return fail("chmod", err)
	}
	if _, err := f.Write(data); err != nil {
		return fail("write", err)
	}
	if err := step(stepFsync); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := step(stepClose); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to fsync it: %w", dir, err)
	}
	// Read-only: the fsync below, not the close, makes the change durable.
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// removeTemps deletes temp files a crash left behind for path.
func removeTemps(path string) error {
	matches, err := filepath.Glob(path + ".*" + tempSuffix)
	if err != nil {
		return fmt.Errorf("list temp files of %s: %w", path, err)
	}
	for _, m := range matches {
		if !strings.HasSuffix(m, tempSuffix) {
			continue
		}
		if err := os.Remove(m); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove leftover temp file %s: %w", m, err)
		}
	}
	return nil
}
