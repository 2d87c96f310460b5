// Package install puts the nicpool CNI plugin binary and its conflist into
// the host's CNI directories, and withdraws the conflist again, so that the
// container runtime reports the node's network ready only while the agent
// can serve IPs.
//
// Every write is a temp file in the target directory, fsynced, renamed over
// the target and followed by an fsync of the directory: a reader (the
// runtime loading the conflist, kubelet executing the plugin) sees the old
// file or the new one, never a partial one, and a crash leaves at worst a
// temp file that the next Install removes. Renaming also makes replacing a
// plugin binary that is executing safe, where writing it in place would fail
// with ETXTBSY or corrupt it.
package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/cni"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Defaults for the optional Config fields.
const (
	DefaultConfFileName = "10-nicpool.conflist"
	DefaultNetworkName  = "nicpool"
)

// PluginType is the plugin's "type" in the conflist and hence the name of the
// binary in BinDir, which is how runtimes find it.
const PluginType = "nicpool"

// Config says what to install where.
type Config struct {
	// BinarySource is the plugin binary shipped in the agent's image.
	BinarySource string
	// BinDir is the host's CNI binary directory, e.g. /opt/cni/bin.
	BinDir string
	// ConfDir is the host's CNI configuration directory, e.g. /etc/cni/net.d.
	ConfDir string
	// ConfFileName is the conflist's file name; DefaultConfFileName when empty.
	// Runtimes use the lexically first file, so keep the "10-" style prefix.
	ConfFileName string
	// NetworkName is the CNI network name; DefaultNetworkName when empty.
	NetworkName string
	// AgentSocket is the agent's unix socket; agentapi.DefaultSocketPath when empty.
	AgentSocket string
	// MTU is the pod interface MTU; 0 lets the plugin use the MTU of the
	// node's interface holding the primary IP.
	MTU int
	// TimeoutSeconds bounds how long ADD waits for an IP; 0 keeps the
	// plugin's default.
	TimeoutSeconds int
	// LogFile, when set, is where the plugin logs.
	LogFile string
	// ChainPortmap appends the reference portmap plugin (hostPort support).
	ChainPortmap bool
	// ChainBandwidth appends the reference bandwidth plugin (traffic shaping).
	ChainBandwidth bool
	// CNIVersion is the conflist's cniVersion: one the plugin supports, or
	// AutoCNIVersion to choose the newest that the plugin, the container
	// runtime (RuntimeVersion) and each chained plugin in BinDir (asked
	// with CNI_COMMAND=VERSION) all speak. LatestCNIVersion when empty.
	CNIVersion string
	// RuntimeVersion returns the node's container runtime as the kubelet
	// reports it in status.nodeInfo.containerRuntimeVersion, e.g.
	// "containerd://1.7.24" (see NodeRuntimeVersion); AutoCNIVersion needs it.
	RuntimeVersion func(context.Context) (string, error)
	// Log receives the chosen CNI version; discarded when zero.
	Log logr.Logger
}

// Installer installs and withdraws the plugin. Its methods are safe for
// concurrent use; they serialise on a mutex.
type Installer struct {
	mu  sync.Mutex
	cfg Config
	// exec runs chained plugins for their VERSION; tests replace it.
	exec invoke.Exec
	// chosen is the last CNI version chosen automatically, to log changes.
	chosen string
}

// New validates cfg, fills in defaults and returns an Installer; it touches
// no file.
func New(cfg Config) (*Installer, error) {
	if cfg.ConfFileName == "" {
		cfg.ConfFileName = DefaultConfFileName
	}
	if cfg.NetworkName == "" {
		cfg.NetworkName = DefaultNetworkName
	}
	if cfg.AgentSocket == "" {
		cfg.AgentSocket = agentapi.DefaultSocketPath
	}
	if cfg.CNIVersion == "" {
		cfg.CNIVersion = LatestCNIVersion
	}
	var errs []error
	if err := CheckCNIVersion(cfg.CNIVersion); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []struct{ what, path string }{
		{"binary source", cfg.BinarySource}, {"bin dir", cfg.BinDir},
		{"conf dir", cfg.ConfDir}, {"agent socket", cfg.AgentSocket},
	} {
		if !filepath.IsAbs(p.path) {
			errs = append(errs, fmt.Errorf("%s %q: not an absolute path", p.what, p.path))
		}
	}
	if cfg.LogFile != "" && !filepath.IsAbs(cfg.LogFile) {
		errs = append(errs, fmt.Errorf("log file %q: not an absolute path", cfg.LogFile))
	}
	if strings.ContainsRune(cfg.ConfFileName, filepath.Separator) || !strings.HasSuffix(cfg.ConfFileName, ".conflist") ||
		strings.HasPrefix(cfg.ConfFileName, ".") {
		errs = append(errs, fmt.Errorf("conf file name %q: want a plain file name ending in .conflist", cfg.ConfFileName))
	}
	if err := utils.ValidateNetworkName(cfg.NetworkName); err != nil {
		errs = append(errs, fmt.Errorf("network name %q: %s", cfg.NetworkName, err.Msg))
	}
	if cfg.MTU != 0 && (cfg.MTU < 68 || cfg.MTU > 65535) {
		errs = append(errs, fmt.Errorf("mtu %d: want 0 (detect) or 68 to 65535", cfg.MTU))
	}
	if cfg.TimeoutSeconds < 0 {
		errs = append(errs, fmt.Errorf("timeout %d seconds: must not be negative", cfg.TimeoutSeconds))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("validate cni install config: %w", err)
	}
	return &Installer{cfg: cfg, exec: &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: io.Discard}}}, nil
}

// CheckCNIVersion accepts AutoCNIVersion and every CNI version the plugin
// supports.
func CheckCNIVersion(v string) error {
	if v != AutoCNIVersion && !slices.Contains(cni.VersionInfo().SupportedVersions(), v) {
		return fmt.Errorf("cni version %q: want %q or one of %v", v, AutoCNIVersion, cni.VersionInfo().SupportedVersions())
	}
	return nil
}

// BinaryPath is where Install puts the plugin binary.
func (i *Installer) BinaryPath() string { return filepath.Join(i.cfg.BinDir, PluginType) }

// ConfPath is where Install puts the conflist.
func (i *Installer) ConfPath() string { return filepath.Join(i.cfg.ConfDir, i.cfg.ConfFileName) }

// Install copies the plugin binary into BinDir (mode 0755) unless the same
// content is already there, then writes the conflist (mode 0644) unless it
// is already current. The binary goes first: a conflist naming a missing
// plugin would make every pod start fail. Install is idempotent.
func (i *Installer) Install() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	conf, err := i.render()
	if err != nil {
		return err
	}
	for _, dir := range []string{i.cfg.BinDir, i.cfg.ConfDir} {
		if err := removeStaleTemps(dir); err != nil {
			return err
		}
	}
	if err := installBinary(i.cfg.BinarySource, i.BinaryPath()); err != nil {
		return fmt.Errorf("install cni plugin binary: %w", err)
	}
	// 0644: the conflist holds no secret (a socket path and numbers), and
	// tools that are not root (crictl, node problem detectors, monitoring)
	// read it; every CNI plugin's conflist is world-readable for that reason.
	if err := writeIfChanged(i.ConfPath(), conf, 0o644); err != nil {
		return fmt.Errorf("install cni conflist: %w", err)
	}
	return nil
}

// Withdraw removes the conflist so the runtime reports the network not
// ready; the binary stays, so pods already running can still be deleted.
// Withdraw is idempotent.
func (i *Installer) Withdraw() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := removeFile(i.ConfPath()); err != nil {
		return fmt.Errorf("withdraw cni conflist: %w", err)
	}
	return nil
}
