package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestBuildWritesLoadableImage builds an image and reads it back as a
// container runtime would: the files are at their paths with their modes,
// and the config runs the entrypoint as the given user.
func TestBuildWritesLoadableImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	if err := os.WriteFile(bin, []byte("#!agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	err := run([]string{"--tag", "ghcr.io/nicpool/nicpool-agent:test", "--out", out,
		"--file", bin + "=/usr/local/bin/nicpool", "--file", bin + "=/nicpool-agent",
		"--symlink", "/usr/sbin/iptables=xtables-nft-multi",
		"--entrypoint", "/nicpool-agent", "--user", "0:0", "--labels", "org.opencontainers.image.version=test"})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	tag, _ := name.NewTag("ghcr.io/nicpool/nicpool-agent:test")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("load image: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("read config: %v", err)
	}
	if cfg.Config.Entrypoint[0] != "/nicpool-agent" || cfg.Config.User != "0:0" || cfg.Architecture != "amd64" || cfg.OS != "linux" {
		t.Errorf("config = %+v, want entrypoint /nicpool-agent as 0:0 on linux/amd64", cfg.Config)
	}
	if cfg.Config.Labels["org.opencontainers.image.version"] != "test" {
		t.Errorf("labels = %v", cfg.Config.Labels)
	}
	files := readFS(t, mutate.Extract(img))
	for _, p := range []string{"usr/local/bin/nicpool", "nicpool-agent"} {
		f, ok := files[p]
		if !ok || f.data != "#!agent" || f.mode != 0o755 {
			t.Errorf("%s = %+v, want the binary with mode 0755", p, f)
		}
	}
	if l := files["usr/sbin/iptables"]; l.link != "xtables-nft-multi" {
		t.Errorf("usr/sbin/iptables links to %q, want xtables-nft-multi", l.link)
	}
	for _, p := range []string{"etc/passwd", "etc/group", "tmp"} {
		if _, ok := files[p]; !ok {
			t.Errorf("image lacks %s", p)
		}
	}
}

// TestRunRejectsBadFlags checks that bad input is an error, not a panic.
func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no tag", []string{"--out", "x", "--file", "a=/a", "--entrypoint", "/a"}},
		{"relative destination", []string{"--tag", "a:b", "--out", "x", "--file", "a=a", "--entrypoint", "/a"}},
		{"relative entrypoint", []string{"--tag", "a:b", "--out", "x", "--file", "a=/a", "--entrypoint", "a"}},
		{"missing source", []string{"--tag", "a:b", "--out", filepath.Join(t.TempDir(), "x"), "--file", "/nonexistent/a=/a", "--entrypoint", "/a"}},
		{"relative symlink path", []string{"--tag", "a:b", "--out", "x", "--file", "a=/a", "--symlink", "b=/a", "--entrypoint", "/a"}},
		{"bad platform", []string{"--tag", "a:b", "--out", "x", "--file", "a=/a", "--entrypoint", "/a", "--platform", "linux"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(tt.args); err == nil {
				t.Fatalf("run(%v) succeeded, want an error", tt.args)
			}
		})
	}
}

type file struct {
	data string
	mode int64
	link string
}

func readFS(t *testing.T, rc io.ReadCloser) map[string]file {
	t.Helper()
	defer func() { _ = rc.Close() }()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("read image filesystem: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = file{data: string(data), mode: h.Mode, link: h.Linkname}
	}
}
