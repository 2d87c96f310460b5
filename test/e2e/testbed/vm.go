package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/containernetworking/plugins/pkg/ns"
)

// VM is a simulated Azure VM: a namespace whose eth0 holds the NIC's
// primary IP, running one nicpool agent, with its own CNI directories.
type VM struct {
	Index     int
	Name      string // also the Node's name
	VMID      string // ARM resource ID
	PrimaryIP string
	MAC       net.HardwareAddr
	NS        *Namespace
	Agent     *Process

	// apiForward bridges the API server into NS.
	apiForward *forwarder

	Dir        string // state, sockets, CNI directories
	SocketPath string
	CNIBinDir  string
	CNIConfDir string

	fabricLink string
}

func (tb *Testbed) buildNetwork(ctx context.Context) error {
	fabNS, err := tb.newNamespace("fabric")
	if err != nil {
		return err
	}
	if tb.fabric, err = newFabric(fabNS); err != nil {
		return err
	}
	sites := []Site{
		{Name: "peer", CIDR: PeerCIDR, HostIP: "10.250.0.10", Gateway: "10.250.0.1"},
		{Name: "onprem", CIDR: OnPremCIDR, HostIP: "192.168.50.10", Gateway: "192.168.50.1"},
		{Name: "internet", CIDR: InternetCIDR, HostIP: "203.0.113.10", Gateway: "203.0.113.1"},
	}
	for _, s := range sites {
		if _, err := tb.AddSite(s); err != nil {
			return err
		}
	}
	if tb.cfg.Storage != nil {
		if err := tb.startStorage(ctx); err != nil {
			return err
		}
		tb.fabric.storage = true
	}
	return tb.setupIMDS()
}

// AddSite creates a site's namespace, connects it to the fabric and adds it
// to Sites (test/cluster adds the control plane's network this way).
func (tb *Testbed) AddSite(s Site) (*Site, error) {
	var err error
	if s.NS, err = tb.newNamespace(s.Name); err != nil {
		return nil, err
	}
	link := "f-" + s.Name
	if s.Name == "internet" {
		link = internetLinkNm
	}
	_, prefix, err := net.ParseCIDR(s.CIDR)
	if err != nil {
		return nil, fmt.Errorf("site %s: %w", s.Name, err)
	}
	ones, _ := prefix.Mask.Size()
	if _, err := tb.fabric.connect(s.NS, link, fmt.Sprintf("%s/%d", s.HostIP, ones), s.Gateway,
		fmt.Sprintf("%s/%d", s.Gateway, ones)); err != nil {
		return nil, fmt.Errorf("connect %s: %w", s.Name, err)
	}
	tb.mu.Lock()
	tb.Sites[s.Name] = &s
	tb.mu.Unlock()
	return &s, nil
}

func (tb *Testbed) startVMs(ctx context.Context) error {
	var host string
	if !tb.cfg.NoKubernetes {
		var err error
		if host, err = tb.apiServerHostPort(); err != nil {
			return err
		}
	}
	var primaries []string
	for i := 0; i < tb.cfg.VMs; i++ {
		vm, err := tb.newVM(ctx, i, host)
		if err != nil {
			return fmt.Errorf("VM %d: %w", i, err)
		}
		tb.VMs = append(tb.VMs, vm)
		primaries = append(primaries, vm.PrimaryIP)
		if err := tb.serveIMDS(ctx, vm); err != nil {
			return err
		}
	}
	for i := 0; i < tb.cfg.Appliances; i++ {
		vm, err := tb.newAppliance(i)
		if err != nil {
			return fmt.Errorf("appliance %d: %w", i, err)
		}
		tb.Appliances = append(tb.Appliances, vm)
	}
	if err := tb.fabric.allowInternet(primaries); err != nil {
		return err
	}
	tb.followDone = make(chan struct{})
	probesDone := make(chan struct{})
	go func() {
		defer close(probesDone)
		tb.fabric.probeLoop(ctx, tb.fabricErrs)
	}()
	go func() {
		defer close(tb.followDone)
		tb.fabric.follow(ctx, tb.Sim, tb.fabricErrs)
		<-probesDone
	}()
	if tb.cfg.ExternalNodes || tb.cfg.NoKubernetes {
		return nil
	}
	for _, vm := range tb.VMs {
		if err := tb.createNode(ctx, vm); err != nil {
			return err
		}
		if err := vm.Agent.Start(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (tb *Testbed) newVM(ctx context.Context, i int, apiServer string) (*VM, error) {
	_, ip, bits, gw := tb.vmAddressing(i)
	vm := &VM{
		Index: i, Name: vmName(i), PrimaryIP: ip,
		VMID:       fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s", SubscriptionID, ResourceGroup, vmName(i)),
		Dir:        filepath.Join(tb.cfg.WorkDir, vmName(i)),
		fabricLink: fmt.Sprintf("f-vm%d", i),
	}
	vm.SocketPath = filepath.Join(vm.Dir, "run", "agent.sock")
	vm.CNIBinDir = filepath.Join(vm.Dir, "opt-cni-bin")
	vm.CNIConfDir = filepath.Join(vm.Dir, "etc-cni-net.d")
	for _, d := range []string{vm.Dir, vm.CNIBinDir, vm.CNIConfDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	var err error
	if vm.NS, err = tb.newNamespace(vm.Name); err != nil {
		return nil, err
	}
	tb.fabric.mu.Lock()
	tb.fabric.vms[lower(vm.VMID)] = vm
	tb.fabric.mu.Unlock()
	if vm.MAC, err = tb.fabric.connect(vm.NS, vm.fabricLink, fmt.Sprintf("%s/%d", vm.PrimaryIP, bits), gw, ""); err != nil {
		return nil, err
	}
	if tb.cfg.NoKubernetes {
		return vm, nil
	}
	fwd, err := forwardInto(ctx, vm.NS, apiServer, tb.cfg.Logf)
	if err != nil {
		return nil, err
	}
	vm.apiForward = fwd
	tb.addCloser(fwd.Close)
	vm.Agent = &Process{
		Name: vm.Name + "-agent", bin: filepath.Join(tb.cfg.BinDir, "nicpool-agent"), netns: vm.NS,
		LogPath: filepath.Join(vm.Dir, "agent.log"),
		args: append([]string{
			"--node-name=" + vm.Name,
			"--kubeconfig=" + tb.kubeconfig,
			"--socket=" + vm.SocketPath,
			"--state-dir=" + filepath.Join(vm.Dir, "state"),
			"--cni-bin-dir=" + vm.CNIBinDir,
			"--cni-conf-dir=" + vm.CNIConfDir,
			"--cni-binary=" + filepath.Join(tb.cfg.BinDir, "nicpool"),
			"--non-masquerade-cidrs=" + PeerCIDR + "," + OnPremCIDR,
			"--metrics-addr=127.0.0.1:9100",
			// The testbed's container runtime is libcni itself (CNI 1.1.0),
			// and no kubelet reports one in the Node's status for auto.
			"--cni-version=1.1.0",
		}, tb.cfg.AgentArgs...),
	}
	return vm, nil
}

// Do runs fn inside the VM's namespace.
func (vm *VM) Do(fn func() error) error {
	if err := vm.NS.Do(func(ns.NetNS) error { return fn() }); err != nil {
		return fmt.Errorf("in %s: %w", vm.Name, err)
	}
	return nil
}

// BlackholeAPIConnections makes every API server connection made so far from
// the VM (its agent's) silently deliver nothing more, in both directions,
// while their sockets stay open; new connections work. It returns how many
// connections it silenced.
func (vm *VM) BlackholeAPIConnections() int { return vm.apiForward.Blackhole() }

// newAppliance creates a network virtual appliance VM: a namespace in the subnet
// "appliances" that forwards what it receives (its NIC's IP forwarding on, as Azure
// requires of an appliance), with no agent.
func (tb *Testbed) newAppliance(i int) (*VM, error) {
	vm := &VM{
		Index: i, Name: applianceName(i), PrimaryIP: applianceIP(i),
		VMID:       fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s", SubscriptionID, ResourceGroup, applianceName(i)),
		fabricLink: fmt.Sprintf("f-nva%d", i),
	}
	var err error
	if vm.NS, err = tb.newNamespace(vm.Name); err != nil {
		return nil, err
	}
	tb.fabric.mu.Lock()
	tb.fabric.vms[lower(vm.VMID)] = vm
	tb.fabric.mu.Unlock()
	if vm.MAC, err = tb.fabric.connect(vm.NS, vm.fabricLink, vm.PrimaryIP+"/24", ApplianceGateway, ""); err != nil {
		return nil, err
	}
	if err := vm.Do(func() error { return writeSysctl("net/ipv4/ip_forward", "1") }); err != nil {
		return nil, err
	}
	return vm, nil
}
