package cni

import (
	"os/exec"
	"strings"
	"testing"
)

// The runtime starts the plugin binary for every ADD and DEL, so what it
// links and initialises is paid on every pod. net/http (and the TLS stack it
// drags in) made each start about 2 ms slower; Kubernetes and Azure client
// packages would be far worse. Keep them out.
func TestPluginBinaryLinksNoHeavyPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/nicpool/nicpool/cmd/nicpool").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	banned := []string{"net/http", "crypto/tls", "k8s.io/", "sigs.k8s.io/", "github.com/Azure/", "github.com/go-logr/", "google.golang.org/"}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if dep == b || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) {
				t.Errorf("the plugin binary imports %s", dep)
			}
		}
	}
}
