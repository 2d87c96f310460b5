package install

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nicpool/nicpool/cni"
)

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get

// AutoCNIVersion makes the installer choose the conflist's cniVersion: the
// newest the plugin, the node's container runtime and every chained plugin
// all speak.
const AutoCNIVersion = "auto"

// LatestCNIVersion is the newest CNI version the plugin speaks (1.1.0 adds
// STATUS and GC); it is written wherever every party speaks it.
const LatestCNIVersion = "1.1.0"

// unknownRuntimeCNIVersion is assumed for a runtime this table does not
// know: libcni has known 1.0.0 since 2021, and 1.1.0 would make an older
// runtime refuse the file and keep the node NotReady.
const unknownRuntimeCNIVersion = "1.0.0"

// detectTimeout bounds reading the Node and asking each chained plugin.
const detectTimeout = 10 * time.Second

// runtimeCNIVersions lists, per runtime and newest release first, the first
// runtime release whose libcni loads conflists up to a CNI version. A
// conflist newer than its libcni knows is refused, the runtime reports
// NetworkReady=false and the node stays NotReady.
var runtimeCNIVersions = map[string][]struct {
	major, minor int
	cniVersion   string
}{
	// containerd 1.6 and 1.7 vendor libcni 1.0/1.1 (spec 1.0.0); 2.0
	// vendors libcni 1.2 (spec 1.1.0); 1.5 and older libcni 0.8 (0.4.0).
	"containerd": {{2, 0, "1.1.0"}, {1, 6, "1.0.0"}, {0, 0, "0.4.0"}},
	// CRI-O 1.31 moved to libcni 1.2; 1.23 to 30 use libcni 1.0/1.1.
	"cri-o": {{1, 31, "1.1.0"}, {1, 23, "1.0.0"}, {0, 0, "0.4.0"}},
}

var releasePattern = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

// RuntimeCNIVersion returns the newest CNI version the container runtime
// named by a Node's status.nodeInfo.containerRuntimeVersion (for example
// "containerd://1.6.20~ds1") loads, and whether the runtime is one it knows.
// For an unknown runtime or an unparsable release it returns 1.0.0 and false.
func RuntimeCNIVersion(runtimeVersion string) (string, bool) {
	name, release, ok := strings.Cut(runtimeVersion, "://")
	rows, known := runtimeCNIVersions[name]
	m := releasePattern.FindStringSubmatch(release)
	if !ok || !known || m == nil {
		return unknownRuntimeCNIVersion, false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	for _, r := range rows {
		if major > r.major || major == r.major && minor >= r.minor {
			return r.cniVersion, true
		}
	}
	return unknownRuntimeCNIVersion, false
}

// chooseCNIVersion returns the newest version in ours that is not newer than
// runtimeMax and that every chained plugin lists as supported.
func chooseCNIVersion(ours []string, runtimeMax string, chained map[string][]string) (string, error) {
	candidates := slices.Clone(ours)
	slices.SortFunc(candidates, func(a, b string) int {
		if a == b {
			return 0
		}
		if newer, _ := version.GreaterThan(a, b); newer {
			return -1
		}
		return 1
	})
	for _, v := range candidates {
		if tooNew, err := version.GreaterThan(v, runtimeMax); err != nil || tooNew {
			continue
		}
		spoken := true
		for _, supported := range chained {
			spoken = spoken && slices.Contains(supported, v)
		}
		if spoken {
			return v, nil
		}
	}
	return "", fmt.Errorf("no cni version is spoken by nicpool (%v), the runtime (up to %s) and the chained plugins %v", ours, runtimeMax, chained)
}

// NodeRuntimeVersion returns a Config.RuntimeVersion that reads the Node's
// status.nodeInfo.containerRuntimeVersion, as the kubelet reports it.
func NodeRuntimeVersion(c client.Reader, nodeName string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var node corev1.Node
		if err := c.Get(ctx, client.ObjectKey{Name: nodeName}, &node); err != nil {
			return "", fmt.Errorf("get node %s: %w", nodeName, err)
		}
		v := node.Status.NodeInfo.ContainerRuntimeVersion
		if v == "" {
			return "", fmt.Errorf("node %s has not reported its container runtime yet", nodeName)
		}
		return v, nil
	}
}

// cniVersion is the version the conflist gets: the configured one, or with
// AutoCNIVersion the one chosen from the runtime and the chained plugins.
func (i *Installer) cniVersion() (string, error) {
	if i.cfg.CNIVersion != AutoCNIVersion {
		return i.cfg.CNIVersion, nil
	}
	if i.cfg.RuntimeVersion == nil {
		return "", errors.New("choose the cni version: the container runtime is unknown; set the cni version explicitly")
	}
	ctx, cancel := context.WithTimeout(context.Background(), detectTimeout)
	defer cancel()
	rv, err := i.cfg.RuntimeVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("choose the cni version: %w", err)
	}
	runtimeMax, known := RuntimeCNIVersion(rv)
	chained := map[string][]string{}
	for _, p := range i.chained() {
		info, err := invoke.GetVersionInfo(ctx, filepath.Join(i.cfg.BinDir, p), i.exec)
		if err != nil {
			return "", fmt.Errorf("choose the cni version: ask chained plugin %s for its versions: %w", p, err)
		}
		chained[p] = info.SupportedVersions()
	}
	v, err := chooseCNIVersion(cni.VersionInfo().SupportedVersions(), runtimeMax, chained)
	if err != nil {
		return "", fmt.Errorf("choose the cni version: %w", err)
	}
	if v != i.chosen {
		i.cfg.Log.Info("Chose the CNI version", "cniVersion", v, "runtime", rv, "runtimeMax", runtimeMax,
			"knownRuntime", known, "chained", chained)
		i.chosen = v
	}
	return v, nil
}

// chained lists the chained plugins' types in conflist order.
func (i *Installer) chained() []string {
	var p []string
	if i.cfg.ChainPortmap {
		p = append(p, "portmap")
	}
	if i.cfg.ChainBandwidth {
		p = append(p, "bandwidth")
	}
	return p
}
