package testbed

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/testenv"
)

// Config sizes a testbed.
type Config struct {
	// VMs is the number of VM namespaces, each with a node agent.
	VMs int
	// BinDir holds nicpool-operator, nicpool-agent and nicpool.
	BinDir string
	// WorkDir receives logs, kubeconfig, state and CNI directories.
	WorkDir string
	// PutLatency is how long armsim keeps a NIC PUT in progress.
	PutLatency time.Duration
	// AgentArgs are extra flags for every agent (for example a shorter cooldown).
	AgentArgs []string
	// OperatorArgs are extra flags for the operator.
	OperatorArgs []string
	// Logf reports progress; nil discards it.
	Logf func(format string, args ...any)
	// ControlPlane, when set, starts the control plane instead of
	// testenv.Start (test/cluster needs its own API server flags).
	ControlPlane func() (*testenv.Env, error)
	// ExternalNodes leaves the Node objects, the operator and the agents to
	// another layer (test/cluster runs kubelets, which register their Nodes,
	// and installs nicpool with Helm): the testbed builds only the VNet.
	ExternalNodes bool
	// NoKubernetes builds the VNet without a control plane, operator,
	// Nodes or agents: VMs without Kubernetes, whose standalone agents the
	// test starts (StartStandaloneAgent).
	NoKubernetes bool
	// ARMFaults puts a fault-injecting front (Testbed.Faults) between the
	// operator and armsim, seeded with Seed.
	ARMFaults bool
	// Seed seeds the testbed's random choices (the ARM fault front's).
	Seed uint64
	// Appliances is the number of network virtual appliance VMs ("nva-N", no agent,
	// IP forwarding on) in the VNet's subnet "appliances" (ApplianceCIDR).
	Appliances int
	// OtherSubnetVMs puts the last OtherSubnetVMs of the VMs in the subnet
	// "nodes-b" (OtherSubnetCIDR, a second address space of the VNet) instead of
	// "nodes": a second node pool, for what differs per subnet (service endpoints).
	OtherSubnetVMs int
	// Storage, when set, adds the storage site: a storage account's public
	// endpoint (StorageIP) behind a firewall with virtual network rules.
	Storage *StorageConfig
	// Topology, when set, edits armsim's topology before it starts (NSGs, route
	// tables, load balancers, public IPs for a test or the demo).
	Topology func(*armsim.Topology)
}

// Subscription and resource group of the simulated VMs.
const (
	SubscriptionID = "00000000-0000-0000-0000-00000000e2e0"
	ResourceGroup  = "rg-nicpool-e2e"
)

// Testbed is a running simulated VNet with a Kubernetes control plane, the
// operator and one agent per VM.
type Testbed struct {
	cfg      Config
	prefix   string
	Env      *testenv.Env
	Sim      *armsim.Server
	Operator *Process
	VMs      []*VM
	// Appliances are the Config.Appliances appliance VMs.
	Appliances []*VM
	// Faults injects ARM faults when Config.ARMFaults is set, else nil.
	Faults *ARMFaults
	Sites  map[string]*Site // "peer", "onprem", "internet"

	kubeconfig string
	fabric     *fabric
	mu         sync.Mutex // guards namespaces and closers: pods start concurrently
	namespaces []*Namespace
	closers    []func() error
	cancel     context.CancelFunc
	fabricErrs chan error
	followDone chan struct{} // closed when the fabric stops following armsim

	apiMu  sync.Mutex
	apiCmd *exec.Cmd // the kube-apiserver RestartAPIServer started, if any
}

// New builds and starts a testbed. Call Close when done, also on error paths
// after New returned a non-nil Testbed.
func New(ctx context.Context, cfg Config) (tb *Testbed, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the VNet testbed needs root to create network namespaces")
	}
	if cfg.VMs < 1 || cfg.VMs > 200 {
		return nil, fmt.Errorf("testbed VMs must be 1..200, got %d", cfg.VMs)
	}
	if cfg.OtherSubnetVMs < 0 || cfg.OtherSubnetVMs > cfg.VMs {
		return nil, fmt.Errorf("testbed OtherSubnetVMs must be 0..VMs (%d), got %d", cfg.VMs, cfg.OtherSubnetVMs)
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := CleanupStale(); err != nil {
		cfg.Logf("Stale namespaces could not all be removed: %v", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	tb = &Testbed{cfg: cfg, prefix: fmt.Sprintf("%s%d-", namePrefix, os.Getpid()), cancel: cancel,
		Sites: map[string]*Site{}, fabricErrs: make(chan error, 16)}
	defer func() {
		if err != nil {
			tb.Close()
			tb = nil
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"control plane", tb.startControlPlane},
		{"simulated ARM", tb.startARM},
		{"fabric and sites", tb.buildNetwork},
		{"operator", tb.startOperator},
		{"VMs and agents", tb.startVMs},
	}
	for _, s := range steps {
		if (cfg.ExternalNodes || cfg.NoKubernetes) && s.name == "operator" || cfg.NoKubernetes && s.name == "control plane" {
			continue
		}
		cfg.Logf("Starting %s.", s.name)
		if err := s.fn(ctx); err != nil {
			return tb, fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	return tb, nil
}

func (tb *Testbed) startControlPlane(context.Context) error {
	start := tb.cfg.ControlPlane
	if start == nil {
		start = func() (*testenv.Env, error) { return testenv.Start() }
	}
	env, err := start()
	if err != nil {
		return err
	}
	tb.Env = env
	tb.addCloser(env.Stop)
	tb.kubeconfig = filepath.Join(tb.cfg.WorkDir, "kubeconfig")
	return env.Kubeconfig(tb.kubeconfig)
}

// Kubeconfig is the path of an admin kubeconfig for the testbed's API server.
func (tb *Testbed) Kubeconfig() string { return tb.kubeconfig }

func (tb *Testbed) apiServerHostPort() (string, error) {
	u, err := url.Parse(tb.Env.Config.Host)
	if err != nil {
		return "", fmt.Errorf("parse API server URL %q: %w", tb.Env.Config.Host, err)
	}
	return u.Host, nil
}

func (tb *Testbed) startARM(ctx context.Context) error {
	topo := &armsim.Topology{
		SubscriptionID: SubscriptionID,
		VNets: []armsim.VNetSpec{{
			ResourceGroup: ResourceGroup, Name: "vnet-e2e", AddressSpace: []string{VNetCIDR},
			Subnets: []armsim.SubnetSpec{{Name: "nodes", CIDR: VNetCIDR}},
			// The peered VNet and on-premises (over a gateway) are in the
			// VirtualNetwork service tag, as in Azure.
			ConnectedPrefixes: []string{PeerCIDR, OnPremCIDR},
		}},
	}
	if tb.cfg.Appliances > 0 {
		v := &topo.VNets[0]
		v.AddressSpace = append(v.AddressSpace, ApplianceCIDR)
		v.Subnets = append(v.Subnets, armsim.SubnetSpec{Name: "appliances", CIDR: ApplianceCIDR})
		for i := 0; i < tb.cfg.Appliances; i++ {
			topo.NICs = append(topo.NICs, armsim.NICSpec{
				ResourceGroup: ResourceGroup, Name: applianceName(i) + "-nic", VMName: applianceName(i),
				VNet: "vnet-e2e", Subnet: "appliances", PrimaryIP: applianceIP(i),
			})
		}
	}
	if tb.cfg.OtherSubnetVMs > 0 {
		v := &topo.VNets[0]
		v.AddressSpace = append(v.AddressSpace, OtherSubnetCIDR)
		v.Subnets = append(v.Subnets, armsim.SubnetSpec{Name: OtherSubnetName, CIDR: OtherSubnetCIDR})
	}
	for i := 0; i < tb.cfg.VMs; i++ {
		subnet, ip, _, _ := tb.vmAddressing(i)
		topo.NICs = append(topo.NICs, armsim.NICSpec{
			ResourceGroup: ResourceGroup, Name: vmName(i) + "-nic", VMName: vmName(i),
			VNet: "vnet-e2e", Subnet: subnet, PrimaryIP: ip,
		})
	}
	if tb.cfg.Topology != nil {
		tb.cfg.Topology(topo)
	}
	sim, err := armsim.New(armsim.Options{Topology: topo, PutLatency: tb.cfg.PutLatency, Logf: nil})
	if err != nil {
		return err
	}
	if err := sim.Start(ctx, "127.0.0.1:0"); err != nil {
		return err
	}
	tb.Sim = sim
	tb.addCloser(sim.Close)
	if err := os.WriteFile(tb.caPath(), sim.CACertPEM(), 0o600); err != nil {
		return fmt.Errorf("write armsim ca certificate: %w", err)
	}
	if tb.cfg.ARMFaults {
		tb.Faults = newARMFaults(sim, tb.cfg.Seed)
		tb.addCloser(func() error { tb.Faults.srv.Close(); return nil })
		return tb.Faults.writeCA(tb.armFrontCAPath())
	}
	return nil
}

func (tb *Testbed) caPath() string { return filepath.Join(tb.cfg.WorkDir, "armsim-ca.pem") }

func (tb *Testbed) startOperator(ctx context.Context) error {
	endpoint, ca := tb.Sim.URL(), tb.caPath()
	if tb.Faults != nil {
		endpoint, ca = tb.Faults.URL(), tb.armFrontCAPath()
	}
	args := append([]string{
		"--kubeconfig=" + tb.kubeconfig,
		"--arm-endpoint=" + endpoint,
		"--arm-ca-file=" + ca,
		"--auth-mode=none",
		"--leader-elect=false",
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		"--zap-log-level=debug",
	}, tb.cfg.OperatorArgs...)
	tb.Operator = &Process{Name: "operator", bin: filepath.Join(tb.cfg.BinDir, "nicpool-operator"), args: args,
		LogPath: filepath.Join(tb.cfg.WorkDir, "operator.log")}
	tb.addCloser(func() error { tb.Operator.Stop(); return nil })
	return tb.Operator.Start(ctx)
}

// Close stops every process and deletes every namespace the testbed created.
func (tb *Testbed) Close() {
	tb.cancel()
	if tb.followDone != nil {
		// The follower works inside the fabric namespace, deleted below.
		<-tb.followDone
	}
	for _, vm := range tb.VMs {
		if vm.Agent != nil {
			vm.Agent.Stop()
		}
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for i := len(tb.closers) - 1; i >= 0; i-- {
		if err := tb.closers[i](); err != nil {
			tb.cfg.Logf("Cleanup step failed: %v", err)
		}
	}
	for i := len(tb.namespaces) - 1; i >= 0; i-- {
		if err := tb.namespaces[i].delete(); err != nil {
			tb.cfg.Logf("Cleanup: %v", err)
		}
	}
}

func (tb *Testbed) newNamespace(suffix string) (*Namespace, error) {
	n, err := newNamespace(tb.prefix + suffix)
	if err != nil {
		return nil, err
	}
	tb.mu.Lock()
	tb.namespaces = append(tb.namespaces, n)
	tb.mu.Unlock()
	return n, nil
}

func (tb *Testbed) addCloser(fn func() error) {
	tb.mu.Lock()
	tb.closers = append(tb.closers, fn)
	tb.mu.Unlock()
}

// FabricError returns an error the fabric hit while following armsim, if any.
func (tb *Testbed) FabricError() error {
	select {
	case err := <-tb.fabricErrs:
		return err
	default:
		return nil
	}
}

func (tb *Testbed) createNode(ctx context.Context, vm *VM) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: vm.Name, Labels: map[string]string{"kubernetes.io/hostname": vm.Name}},
		Spec:       corev1.NodeSpec{ProviderID: "azure://" + vm.VMID},
	}
	if err := tb.Env.Client.Create(ctx, node); err != nil {
		return fmt.Errorf("create node %s: %w", vm.Name, err)
	}
	return nil
}

// Client is an admin client of the testbed's API server.
func (tb *Testbed) Client() client.Client { return tb.Env.Client }

// vmAddressing returns VM i's subnet, primary IP, prefix length on eth0 and gateway.
func (tb *Testbed) vmAddressing(i int) (subnet, ip string, bits int, gw string) {
	if i >= tb.cfg.VMs-tb.cfg.OtherSubnetVMs {
		return OtherSubnetName, fmt.Sprintf("10.242.0.%d", 10+i), 24, OtherSubnetGateway
	}
	return "nodes", primaryIP(i), 16, VNetGateway
}

func vmName(i int) string        { return fmt.Sprintf("vm-%d", i) }
func primaryIP(i int) string     { return fmt.Sprintf("10.240.0.%d", 10+i) }
func applianceName(i int) string { return fmt.Sprintf("nva-%d", i) }
func applianceIP(i int) string   { return fmt.Sprintf("10.241.0.%d", 10+i) }
func lower(s string) string      { return strings.ToLower(s) }
