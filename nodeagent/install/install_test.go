package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// testInstaller returns an Installer writing into fresh temp dirs, with a
// fake plugin binary holding content.
func testInstaller(t *testing.T, content string, mutate func(*Config)) *Installer {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join(root, "image", "nicpool")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte(content), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		BinarySource: src,
		BinDir:       filepath.Join(root, "opt", "cni", "bin"),
		ConfDir:      filepath.Join(root, "etc", "cni", "net.d"),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	i, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return i
}

func assertFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if info.Mode().Perm() != mode {
		t.Errorf("%s mode = %v, want %v", path, info.Mode().Perm(), mode)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Errorf("%s = %q, want %q", path, got, content)
	}
}

// assertNoTemps fails when a temp file is left in dir.
func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			t.Errorf("temp file %s left in %s", e.Name(), dir)
		}
	}
}

func TestInstallWritesBothFiles(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	for range 2 { // the second run must change nothing and not fail
		if err := i.Install(); err != nil {
			t.Fatalf("Install: %v", err)
		}
		assertFile(t, filepath.Join(i.cfg.BinDir, "nicpool"), "plugin v1", 0o755)
		conf, err := i.ConfList()
		if err != nil {
			t.Fatal(err)
		}
		assertFile(t, filepath.Join(i.cfg.ConfDir, "10-nicpool.conflist"), string(conf), 0o644)
		assertNoTemps(t, i.cfg.BinDir)
		assertNoTemps(t, i.cfg.ConfDir)
	}
	// What a runtime does: load the directory and find our network.
	list, err := libcni.ConfListFromFile(i.ConfPath())
	if err != nil {
		t.Fatalf("libcni cannot load the installed conflist: %v", err)
	}
	if list.Name != "nicpool" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "nicpool" {
		t.Errorf("loaded conflist = %+v", list)
	}
}

func TestInstallReplacesBinaryOnlyWhenDifferent(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	dst := i.BinaryPath()
	before, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	// Same content: the file (inode) is kept.
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	same, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, same) {
		t.Error("binary with unchanged content was rewritten")
	}
	// New content of the same size, and a wrong mode: both replaced.
	tests := []struct {
		name  string
		setup func() error
		want  string
	}{
		{"new content", func() error { return os.WriteFile(i.cfg.BinarySource, []byte("plugin v2"), 0o700) }, "plugin v2"},
		{"mode changed on the host", func() error { return os.Chmod(dst, 0o700) }, "plugin v2"},
		{"truncated on the host", func() error { return os.WriteFile(dst, []byte("plug"), 0o755) }, "plugin v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.setup(); err != nil {
				t.Fatal(err)
			}
			if err := i.Install(); err != nil {
				t.Fatal(err)
			}
			assertFile(t, dst, tt.want, 0o755)
		})
	}
}

func TestInstallFailureLeavesOldFiles(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	oldConf, err := i.ConfList()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(i.cfg.BinarySource, []byte("plugin v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	i.cfg.MTU = 1400 // changes the conflist too
	injected := errors.New("crash before rename")
	var seen []string
	beforeRename = func(tmp string) error {
		seen = append(seen, tmp)
		return injected
	}
	t.Cleanup(func() { beforeRename = nil })

	if err := i.Install(); !errors.Is(err, injected) {
		t.Fatalf("Install = %v, want the injected error", err)
	}
	if len(seen) != 1 {
		t.Fatalf("temp files written = %q, want one (the binary; the conflist must wait)", seen)
	}
	assertFile(t, i.BinaryPath(), "plugin v1", 0o755)
	assertFile(t, i.ConfPath(), string(oldConf), 0o644)
	assertNoTemps(t, i.cfg.BinDir)
	assertNoTemps(t, i.cfg.ConfDir)
}

func TestInstallConfListFailureKeepsOldConfList(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	oldConf, err := i.ConfList()
	if err != nil {
		t.Fatal(err)
	}
	i.cfg.MTU = 1400
	injected := errors.New("crash before rename")
	beforeRename = func(tmp string) error {
		if filepath.Dir(tmp) == i.cfg.ConfDir {
			return injected
		}
		return nil
	}
	t.Cleanup(func() { beforeRename = nil })
	if err := i.Install(); !errors.Is(err, injected) {
		t.Fatalf("Install = %v, want the injected error", err)
	}
	assertFile(t, i.ConfPath(), string(oldConf), 0o644)
	assertNoTemps(t, i.cfg.ConfDir)
	beforeRename = nil
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	newConf, err := i.ConfList()
	if err != nil {
		t.Fatal(err)
	}
	assertFile(t, i.ConfPath(), string(newConf), 0o644)
}

func TestConcurrentInstallAndWithdraw(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for n := range 20 {
		wg.Go(func() {
			if n%4 == 3 {
				errs <- i.Withdraw()
				return
			}
			errs <- i.Install()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	assertFile(t, i.BinaryPath(), "plugin v1", 0o755)
	assertNoTemps(t, i.cfg.BinDir)
	assertNoTemps(t, i.cfg.ConfDir)
}

func TestInstallRemovesStaleTemps(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	if err := os.MkdirAll(i.cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(i.cfg.ConfDir, tempPrefix+"123")
	fresh := filepath.Join(i.cfg.ConfDir, tempPrefix+"456")
	other := filepath.Join(i.cfg.ConfDir, "05-other.conflist")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want bool
	}{{stale, false}, {fresh, true}, {other, true}} {
		_, err := os.Stat(tt.path)
		if got := err == nil; got != tt.want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(tt.path), got, tt.want)
		}
	}
}

func TestWithdraw(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	if err := i.Withdraw(); err != nil { // nothing installed yet
		t.Fatalf("Withdraw before Install: %v", err)
	}
	if err := i.Install(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := i.Withdraw(); err != nil {
			t.Fatalf("Withdraw: %v", err)
		}
		if _, err := os.Stat(i.ConfPath()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("conflist after Withdraw: %v, want it gone", err)
		}
		assertFile(t, i.BinaryPath(), "plugin v1", 0o755)
	}
}

func TestInstallMissingSource(t *testing.T) {
	i := testInstaller(t, "plugin v1", nil)
	i.cfg.BinarySource = filepath.Join(t.TempDir(), "missing")
	if err := i.Install(); err == nil || !strings.Contains(err.Error(), "install cni plugin binary: open ") {
		t.Fatalf("Install = %v, want an error naming the binary", err)
	}
	if _, err := os.Stat(i.ConfPath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("conflist written although the binary is missing")
	}
}
