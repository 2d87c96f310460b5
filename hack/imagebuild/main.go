// Command imagebuild assembles a container image from static files, without a
// Docker daemon or a registry: an empty base, one layer holding the given
// files (plus /etc/passwd, /etc/group and an empty /tmp), and a config with
// the entrypoint and user. It writes a `docker save`-style tarball that
// `docker load`, `ctr images import`, `kind load image-archive` and
// `crane push` all take.
//
// It is its own module so that the image tooling's dependencies stay out of
// nicpool's go.mod.
//
// Usage:
//
//	imagebuild --tag ghcr.io/nicpool/nicpool-agent:dev --out agent.tar \
//	  --file bin/nicpool-agent=/nicpool-agent --file bin/nicpool=/usr/local/bin/nicpool \
//	  --symlink /usr/sbin/iptables=xtables-nft-multi \
//	  --entrypoint /nicpool-agent --user 0:0
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// fileList is a repeatable --file SRC=DST flag.
type fileList []fileSpec

func (f *fileList) String() string { return fmt.Sprint(*f) }

func (f *fileList) Set(v string) error {
	src, dst, ok := strings.Cut(v, "=")
	if !ok || src == "" || !strings.HasPrefix(dst, "/") {
		return fmt.Errorf("parse --file %q: want SRC=/absolute/destination", v)
	}
	*f = append(*f, fileSpec{Src: src, Dst: dst})
	return nil
}

// linkList is a repeatable --symlink DST=TARGET flag.
type linkList []linkSpec

func (l *linkList) String() string { return fmt.Sprint(*l) }

func (l *linkList) Set(v string) error {
	dst, target, ok := strings.Cut(v, "=")
	if !ok || target == "" || !strings.HasPrefix(dst, "/") {
		return fmt.Errorf("parse --symlink %q: want /absolute/path=TARGET", v)
	}
	*l = append(*l, linkSpec{Dst: dst, Target: target})
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var spec Spec
	var files fileList
	var links linkList
	var labels string
	fs.StringVar(&spec.Tag, "tag", "", "image reference to record in the tarball, e.g. ghcr.io/nicpool/nicpool-operator:dev")
	fs.StringVar(&spec.Out, "out", "", "path of the tarball to write")
	fs.Var(&files, "file", "SRC=DST: put file SRC at absolute path DST in the image (repeatable)")
	fs.Var(&links, "symlink", "DST=TARGET: make DST a symbolic link to TARGET (repeatable)")
	fs.StringVar(&spec.Entrypoint, "entrypoint", "", "absolute path of the program the image runs")
	fs.StringVar(&spec.User, "user", "65532:65532", "UID:GID the image runs as by default")
	fs.StringVar(&spec.Platform, "platform", "linux/amd64", "OS/ARCH of the image")
	fs.StringVar(&labels, "labels", "", "comma-separated KEY=VALUE image labels")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	spec.Files = files
	spec.Links = links
	spec.Labels = map[string]string{}
	for _, kv := range strings.Split(labels, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("parse --labels entry %q: want KEY=VALUE", kv)
		}
		spec.Labels[k] = v
	}
	switch {
	case spec.Tag == "":
		return errors.New("--tag is required")
	case spec.Out == "":
		return errors.New("--out is required")
	case !strings.HasPrefix(spec.Entrypoint, "/"):
		return errors.New("--entrypoint must be an absolute path")
	case len(spec.Files) == 0:
		return errors.New("at least one --file is required")
	}
	return Build(spec)
}
