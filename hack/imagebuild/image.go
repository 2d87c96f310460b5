package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fileSpec puts the host file Src at the absolute image path Dst.
type fileSpec struct {
	Src, Dst string
}

// linkSpec makes the absolute image path Dst a symbolic link to Target.
type linkSpec struct {
	Dst, Target string
}

// Spec describes one image.
type Spec struct {
	Tag        string
	Out        string
	Files      []fileSpec
	Links      []linkSpec
	Entrypoint string
	User       string
	Platform   string
	Labels     map[string]string
}

// epoch is every file's modification time, so that the same inputs give the
// same image digest.
var epoch = time.Unix(0, 0).UTC()

// passwd and group name the two users nicpool's images run as.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

// Build writes the image that spec describes to spec.Out.
func Build(spec Spec) error {
	ref, err := name.NewTag(spec.Tag)
	if err != nil {
		return fmt.Errorf("parse tag %q: %w", spec.Tag, err)
	}
	osName, arch, ok := strings.Cut(spec.Platform, "/")
	if !ok {
		return fmt.Errorf("parse platform %q: want OS/ARCH", spec.Platform)
	}
	layerData, err := layerTar(spec.Files, spec.Links)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerData)), nil
	})
	if err != nil {
		return fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = osName, arch, v1.Time{Time: epoch}
	cfg.Config.Entrypoint = []string{spec.Entrypoint}
	cfg.Config.User = spec.User
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Config.Labels = spec.Labels
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	if err := tarball.WriteToFile(spec.Out, ref, img); err != nil {
		return fmt.Errorf("write image %s to %s: %w", ref, spec.Out, err)
	}
	return nil
}

// layerTar builds the layer: the parent directories of every file, the files
// themselves (mode kept, owned by root), the links, /etc/passwd, /etc/group
// and /tmp.
func layerTar(files []fileSpec, links []linkSpec) ([]byte, error) {
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	entries := map[string]entry{}
	addDirs := func(p string) {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			name := strings.TrimPrefix(d, "/") + "/"
			entries[name] = entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch}}
		}
	}
	addFile := func(dst string, data []byte, mode int64) {
		addDirs(dst)
		name := strings.TrimPrefix(dst, "/")
		entries[name] = entry{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch}, data: data}
	}
	for _, f := range files {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("read %s for %s: %w", f.Src, f.Dst, err)
		}
		st, err := os.Stat(f.Src)
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", f.Src, err)
		}
		addFile(path.Clean(f.Dst), data, int64(st.Mode().Perm()))
	}
	for _, l := range links {
		dst := path.Clean(l.Dst)
		addDirs(dst)
		name := strings.TrimPrefix(dst, "/")
		entries[name] = entry{hdr: &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: l.Target, Mode: 0o777, ModTime: epoch}}
	}
	addFile("/etc/passwd", []byte(passwd), 0o644)
	addFile("/etc/group", []byte(group), 0o644)
	entries["tmp/"] = entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}}

	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("write layer header %s: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write layer file %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}
