// Package vmhost drives a testbed VM as a container host without
// Kubernetes, for test/standalone and its demo: Debian's containerd
// (test/cluster's Runtime) with nerdctl reading the CNI directories the
// VM's standalone agent installs into, the NIC an administrator
// provisions, and the connectivity promises of a container.
package vmhost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
	"github.com/nicpool/nicpool/internal/testenv"
	"github.com/nicpool/nicpool/test/cluster"
	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// Nerdctl is a VM with containerd and nerdctl.
type Nerdctl struct {
	TB      *testbed.Testbed
	VM      *testbed.VM
	Runtime *cluster.Runtime
	Image   cluster.Image
	bin     string
	data    string // nerdctl's --data-root
}

// StartNerdctl starts containerd on vm with its files under dir and
// imports the echo image (hack/test-images.sh) into nerdctl's containerd
// namespace, "default". nerdctl is bin/node/nerdctl (hack/nerdctl.sh).
// Call Close when done, also after an error.
func StartNerdctl(ctx context.Context, tb *testbed.Testbed, vm *testbed.VM, dir string) (*Nerdctl, error) {
	h := &Nerdctl{TB: tb, VM: vm, bin: filepath.Join(testenv.RepoRoot(), "bin", "node", "nerdctl"), data: filepath.Join(dir, "nerdctl")}
	if _, err := os.Stat(h.bin); err != nil {
		return h, fmt.Errorf("nerdctl is missing (make setup runs hack/nerdctl.sh): %w", err)
	}
	var err error
	if h.Image, err = cluster.EchoImage(""); err != nil {
		return h, fmt.Errorf("the echo image is missing (hack/test-images.sh builds it): %w", err)
	}
	// nerdctl refuses to run without the plugins of its default bridge
	// network, which a host gets from containernetworking-plugins.
	if err := cluster.CopyReferencePlugins(vm.CNIBinDir, "bridge", "host-local", "portmap", "firewall", "tuning", "loopback"); err != nil {
		return h, err
	}
	if h.Runtime, err = cluster.StartRuntime(ctx, vm, filepath.Join(dir, "runtime")); err != nil {
		return h, err
	}
	return h, h.Runtime.ImportImage(ctx, "default", h.Image.File)
}

// Close stops containerd and every container.
func (h *Nerdctl) Close() error {
	if h.Runtime == nil {
		return nil
	}
	return h.Runtime.Close()
}

// Nerdctl runs nerdctl on the VM with the VM's CNI directories and returns
// its trimmed standard output.
func (h *Nerdctl) Nerdctl(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{h.bin, "--address", cluster.RuntimeSocket, "--namespace", "default",
		"--data-root", h.data, "--cgroup-manager", "cgroupfs",
		"--cni-path", h.VM.CNIBinDir, "--cni-netconfpath", h.VM.CNIConfDir}, args...)
	out, err := h.Runtime.ExecContext(ctx, argv...)
	return strings.TrimSpace(out), err
}

// Ctr is a container nerdctl started.
type Ctr struct {
	Name, ID string
	Pid      int
	IP       string
}

// CNIID is the container ID nerdctl's CNI hook passes, and so the ID the
// agent records: namespace-ID.
func (c Ctr) CNIID() string { return "default-" + c.ID }

// Run starts the echo image (its HTTP server on port 8080) as a detached
// container on the nicpool network: `nerdctl run -d --net nicpool`.
func (h *Nerdctl) Run(ctx context.Context, name string) (Ctr, error) {
	id, err := h.Nerdctl(ctx, "run", "-d", "--name", name, "--net", "nicpool", "--cgroup-parent", h.Runtime.CgroupParent(), h.Image.Ref)
	if err != nil {
		return Ctr{}, err
	}
	return h.Inspect(ctx, id)
}

// Rm removes containers by name or ID: `nerdctl rm -f`.
func (h *Nerdctl) Rm(ctx context.Context, ids ...string) error {
	_, err := h.Nerdctl(ctx, append([]string{"rm", "-f"}, ids...)...)
	return err
}

// Inspect reads a container's ID, name, PID and IP (nerdctl reads the IP
// from the container's eth0).
func (h *Nerdctl) Inspect(ctx context.Context, id string) (Ctr, error) {
	out, err := h.Nerdctl(ctx, "inspect", "--format", "{{.ID}} {{.Name}} {{.State.Pid}} {{.NetworkSettings.IPAddress}}", id)
	if err != nil {
		return Ctr{}, err
	}
	f := strings.Fields(out)
	if len(f) != 4 {
		return Ctr{}, fmt.Errorf("nerdctl inspect %s said %q, not ID, name, PID and IP", id, out)
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil {
		return Ctr{}, fmt.Errorf("nerdctl inspect %s: PID %q: %w", id, f[2], err)
	}
	return Ctr{ID: f[0], Name: f[1], Pid: pid, IP: f[3]}, nil
}

// Running lists the containers nerdctl reports running, by ID.
func (h *Nerdctl) Running(ctx context.Context) (map[string]Ctr, error) {
	out, err := h.Nerdctl(ctx, "ps", "-q", "--no-trunc")
	if err != nil {
		return nil, err
	}
	all := map[string]Ctr{}
	for _, id := range strings.Fields(out) {
		c, err := h.Inspect(ctx, id)
		if err != nil {
			return nil, err
		}
		all[c.ID] = c
	}
	return all, nil
}

// NetNS opens c's network namespace as a testbed namespace, for probes;
// close it when done.
func (c Ctr) NetNS() (*testbed.Namespace, error) {
	n, err := ns.GetNS(fmt.Sprintf("/proc/%d/ns/net", c.Pid))
	if err != nil {
		return nil, fmt.Errorf("open network namespace of %s: %w", c.Name, err)
	}
	return &testbed.Namespace{Name: c.Name, NetNS: n}, nil
}

func nicClient(tb *testbed.Testbed) (*azure.NICClient, error) {
	co, err := armsimtest.ClientOptions(tb.Sim)
	if err != nil {
		return nil, err
	}
	return azure.NewNICClient(azure.Config{ClientOptions: co, Credential: armsimtest.Credential{}, LROTimeout: time.Minute})
}

// readNIC reads vm's NIC through ARM, found as the operator finds it, and
// returns the client, the NIC's ID and the NIC.
func readNIC(ctx context.Context, tb *testbed.Testbed, vm *testbed.VM) (*azure.NICClient, string, *armnetwork.Interface, error) {
	nics, err := nicClient(tb)
	if err != nil {
		return nil, "", nil, err
	}
	nicID, err := nics.FindNICForVM(ctx, vm.VMID)
	if err != nil {
		return nil, "", nil, err
	}
	nic, err := nics.GetNIC(ctx, nicID)
	if err != nil {
		return nil, "", nil, err
	}
	return nics, nicID, nic, nil
}

// Provision adds n secondary IP configurations named docker-<i> to vm's
// NIC through ARM, as an administrator preparing a Docker host does, and
// returns their IPs.
func Provision(ctx context.Context, tb *testbed.Testbed, vm *testbed.VM, n int) ([]string, error) {
	nics, nicID, nic, err := readNIC(ctx, tb, vm)
	if err != nil {
		return nil, err
	}
	subnet := nicsync.PrimaryConfig(nic).Properties.Subnet
	for i := range n {
		nic.Properties.IPConfigurations = append(nic.Properties.IPConfigurations, &armnetwork.InterfaceIPConfiguration{
			Name: to.Ptr(fmt.Sprintf("docker-%d", i)),
			Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
				PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic), Subnet: subnet,
			},
		})
	}
	if nic, err = nics.UpdateNIC(ctx, nic); err != nil {
		return nil, fmt.Errorf("provision %d ip configurations on %s: %w", n, nicID, err)
	}
	var ips []string
	for _, c := range nicsync.Configs(nic) {
		if strings.HasPrefix(c.Name, "docker-") {
			ips = append(ips, c.IP)
		}
	}
	return ips, nil
}

// NICIPs are the IPs of vm's NIC as ARM has them, keyed by IP, with the
// name of their IP configuration; an IP configured twice is an error.
func NICIPs(ctx context.Context, tb *testbed.Testbed, vm *testbed.VM) (map[string]string, error) {
	_, _, nic, err := readNIC(ctx, tb, vm)
	if err != nil {
		return nil, err
	}
	ips := map[string]string{}
	for _, c := range nicsync.Configs(nic) {
		if prev, dup := ips[c.IP]; dup {
			return ips, fmt.Errorf("%s's NIC has %s in both %s and %s", vm.Name, c.IP, prev, c.Name)
		}
		ips[c.IP] = c.Name
	}
	return ips, nil
}

// WaitInstalled waits up to timeout for the agent's conflist in vm's CNI
// configuration directory.
func WaitInstalled(ctx context.Context, vm *testbed.VM, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if m, _ := filepath.Glob(filepath.Join(vm.CNIConfDir, "*nicpool*.conflist")); len(m) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's agent installed no conflist within %s", vm.Name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Paths are the promises for a container on a VM without Kubernetes, from
// its network namespace n (name names it in the table): the peered VNet
// and on-premises reach it and it reaches them with its own IP, it reaches
// the internet through SNAT to its VM's primary IP, and the internet does
// not reach it. Probe servers must run in n and in the sites
// (StartProbeServers).
func Paths(tb *testbed.Testbed, vm *testbed.VM, name, ip string, n *testbed.Namespace) []testbed.Path {
	peer, onprem, inet := tb.Sites["peer"], tb.Sites["onprem"], tb.Sites["internet"]
	return []testbed.Path{
		{Name: "peered VNet to container", From: peer.NS, FromName: "peer-vnet", To: ip, ToName: name, WantSeen: peer.HostIP},
		{Name: "on-premises to container", From: onprem.NS, FromName: "on-prem", To: ip, ToName: name, WantSeen: onprem.HostIP},
		{Name: "container to peered VNet", From: n, FromName: name, To: peer.HostIP, ToName: "peer-vnet", WantSeen: ip},
		{Name: "container to on-premises", From: n, FromName: name, To: onprem.HostIP, ToName: "on-prem", WantSeen: ip},
		{Name: "container to internet (SNAT)", From: n, FromName: name, To: inet.HostIP, ToName: "internet", WantSeen: vm.PrimaryIP},
		{Name: "internet to container (blocked)", From: inet.NS, FromName: "internet", To: ip, ToName: name, WantFail: true},
	}
}

// StartProbeServers starts the testbed's probe server in each site Paths
// uses and in each given namespace.
func StartProbeServers(ctx context.Context, tb *testbed.Testbed, extra ...*testbed.Namespace) error {
	for _, s := range []string{"peer", "onprem", "internet"} {
		extra = append(extra, tb.Sites[s].NS)
	}
	for _, n := range extra {
		if err := tb.StartProbeServer(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// EchoFrom asks the echo server of the container at ip (its own process)
// from site and returns the source address it saw.
func EchoFrom(ctx context.Context, site *testbed.Site, ip string) (string, error) {
	r, err := cluster.GetFrom(ctx, site.NS, fmt.Sprintf("http://%s:8080/", ip))
	if err != nil {
		return "", err
	}
	return r.SourceIP(), nil
}
