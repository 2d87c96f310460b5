package install

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// debianPlugins is where Debian's containernetworking-plugins package puts
// the reference plugins (hack/setup.sh installs it).
const debianPlugins = "/usr/lib/cni"

// TestAutoCNIVersionWithDebianPlugins asks Debian's real portmap and
// bandwidth binaries (plugins 1.1.1, which stop at CNI 1.0.0) for their
// versions: even under a runtime that speaks 1.1.0 the conflist must say
// 1.0.0, or the runtime would fail every pod when it runs the chain. The
// plugins run in a network namespace the test creates, as on a node.
func TestAutoCNIVersionWithDebianPlugins(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	for _, p := range []string{"portmap", "bandwidth"} {
		if _, err := os.Stat(filepath.Join(debianPlugins, p)); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("Debian's %s is missing (run hack/setup.sh): %v", p, err)
			}
			t.Skipf("Debian's %s is missing (run hack/setup.sh): %v", p, err)
		}
	}
	i := testInstaller(t, "plugin", func(c *Config) {
		c.CNIVersion = AutoCNIVersion
		c.RuntimeVersion = func(context.Context) (string, error) { return "containerd://2.1.3", nil }
		c.ChainPortmap, c.ChainBandwidth = true, true
	})
	for _, p := range []string{"portmap", "bandwidth"} {
		copyFile(t, filepath.Join(debianPlugins, p), filepath.Join(i.cfg.BinDir, p))
	}
	node, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		_ = node.Close()
		if err := testutils.UnmountNS(node); err != nil {
			t.Errorf("remove netns: %v", err)
		}
	})
	var conf []byte
	err = node.Do(func(ns.NetNS) error {
		var err error
		conf, err = i.ConfList()
		return err
	})
	if err != nil {
		t.Fatalf("ConfList: %v", err)
	}
	if got := cniVersionOf(t, conf); got != "1.0.0" {
		t.Errorf("cniVersion %s with Debian's portmap and bandwidth, want 1.0.0:\n%s", got, conf)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
