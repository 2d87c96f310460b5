package testbed

import (
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// NewCNIConfig returns a libcni client for plugins in paths, caching results
// in cacheDir, that is safe for concurrent ADDs and DELs: given a nil exec,
// libcni creates its exec lazily on each call without a lock, which the race
// detector reports as soon as two pods are wired at once.
func NewCNIConfig(paths []string, cacheDir string) *libcni.CNIConfig {
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{}, PluginDecoder: version.PluginDecoder{}}
	return libcni.NewCNIConfigWithCacheDir(paths, cacheDir, exec)
}
