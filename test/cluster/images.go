package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// images are the image tarballs the nodes import (hack/test-images.sh
// writes them and images.txt, one "FILE REFERENCE" line each).
type images struct {
	dir   string
	files map[string]string // file name -> reference
	// References of the images the cluster itself uses.
	sandbox, echo, coredns, operator, agent string
}

func readImages(dir string) (images, error) {
	im := images{dir: dir, files: map[string]string{}}
	data, err := os.ReadFile(filepath.Join(dir, "images.txt"))
	if err != nil {
		return im, fmt.Errorf("read the image list (run hack/test-images.sh): %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		im.files[f[0]] = f[1]
	}
	for file, ref := range map[string]*string{
		"pause.tar": &im.sandbox, "echo.tar": &im.echo, "coredns.tar": &im.coredns,
		"nicpool-operator.tar": &im.operator, "nicpool-agent.tar": &im.agent,
	} {
		if im.files[file] == "" {
			return im, fmt.Errorf("%s lists no %s (run hack/test-images.sh)", filepath.Join(dir, "images.txt"), file)
		}
		*ref = im.files[file]
	}
	return im, nil
}

// EchoImage is the reference of the test workload image.
func (c *Cluster) EchoImage() string { return c.images.echo }

// importImages imports every image tarball into the node's containerd, in
// the namespace the CRI plugin uses.
func (c *Cluster) importImages(ctx context.Context, n *Node) error {
	for file := range c.images.files {
		if _, err := run("ctr", "--address", n.socket(), "--namespace", "k8s.io", "images", "import",
			filepath.Join(c.images.dir, file)); err != nil {
			return fmt.Errorf("import %s into %s: %w", file, n.Name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}
