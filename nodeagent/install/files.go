package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// tempPrefix names our temp files. They never end in .conflist, .conf or
// .json, so a runtime scanning ConfDir never loads a half-written one.
const tempPrefix = ".nicpool-install-"

// staleAfter is how old a temp file must be before Install deletes it as the
// leftover of a crash; younger ones may belong to another agent process
// (a rolling update) that is writing right now.
const staleAfter = 10 * time.Minute

// dirMode is for BinDir and ConfDir when Install has to create them; it is
// what distributions use for /opt/cni/bin and /etc/cni/net.d.
const dirMode = 0o755

// beforeRename, when set by a test, runs after a temp file is complete and
// before it is renamed into place; an error aborts the write there.
var beforeRename func(tmp string) error

// installBinary copies src to dst with mode 0755 unless dst already has the
// same content and mode.
func installBinary(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	// Read-only: a close error cannot lose anything.
	defer func() { _ = in.Close() }()
	same, err := sameFile(in, dst, 0o755)
	if err != nil || same {
		return err
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind %s: %w", src, err)
	}
	return writeAtomic(dst, in, 0o755)
}

// sameFile reports whether path exists with mode and the content of in.
func sameFile(in *os.File, path string, mode fs.FileMode) (bool, error) {
	out, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open %s: %w", path, err)
	}
	// Read-only: a close error cannot lose anything.
	defer func() { _ = out.Close() }()
	inInfo, err := in.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", in.Name(), err)
	}
	outInfo, err := out.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	if !outInfo.Mode().IsRegular() || outInfo.Mode().Perm() != mode || outInfo.Size() != inInfo.Size() {
		return false, nil
	}
	return equalReaders(in, out)
}

// equalReaders compares two streams chunk by chunk.
func equalReaders(a, b io.Reader) (bool, error) {
	bufA, bufB := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, errA := io.ReadFull(a, bufA)
		m, errB := io.ReadFull(b, bufB)
		if !bytes.Equal(bufA[:n], bufB[:m]) {
			return false, nil
		}
		endA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		endB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		switch {
		case errA != nil && !endA:
			return false, fmt.Errorf("compare files: %w", errA)
		case errB != nil && !endB:
			return false, fmt.Errorf("compare files: %w", errB)
		case endA || endB:
			return endA && endB, nil
		}
	}
}

// writeIfChanged writes data to path atomically unless path already holds
// exactly data with mode.
func writeIfChanged(path string, data []byte, mode fs.FileMode) error {
	cur, err := os.ReadFile(path)
	if err == nil && bytes.Equal(cur, data) {
		info, err := os.Stat(path)
		if err == nil && info.Mode().Perm() == mode {
			return nil
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return writeAtomic(path, bytes.NewReader(data), mode)
}

// writeAtomic replaces path with the content of r: temp file in the same
// directory, fsync, rename, fsync of the directory. On any failure the temp
// file is removed and path is untouched.
func writeAtomic(path string, r io.Reader, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tmp.Close()
			if rmErr := os.Remove(tmp.Name()); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove temp file %s: %w", tmp.Name(), rmErr))
			}
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	// Chmod, not CreateTemp's 0600 and not the umask, decides the mode.
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if beforeRename != nil {
		if err := beforeRename(tmp.Name()); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	committed = true
	return syncDir(dir)
}

// removeFile deletes path; a missing file is no error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	// Read-only: the fsync below, not the close, makes the change durable.
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// removeStaleTemps deletes our temp files older than staleAfter from dir, the
// leftovers of a crash mid-write. A missing dir has none.
func removeStaleTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s for stale temp files: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile by the process that wrote it
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stat %s: %w", e.Name(), err))
			continue
		}
		if time.Since(info.ModTime()) < staleAfter {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale temp file: %w", err))
		}
	}
	return errors.Join(errs...)
}
