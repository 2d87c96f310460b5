package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/armpool"
	"github.com/nicpool/nicpool/nodeagent/gc"
	"github.com/nicpool/nicpool/nodeagent/imdspool"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/poolsource"
)

// Pool sources the agent can run with (--pool-source).
const (
	// PoolSourceNodeIPPool is the Kubernetes node's NodeIPPool, kept by the
	// operator (the DaemonSet).
	PoolSourceNodeIPPool = "nodeippool"
	// PoolSourceARM is the VM's own NIC, kept by the agent through ARM
	// with the VM's managed identity (standalone, no Kubernetes).
	PoolSourceARM = "arm"
	// PoolSourceIMDS is the secondary IPs an administrator created on the
	// NIC, read from instance metadata (standalone, read-only).
	PoolSourceIMDS = "imds"
)

// StandaloneOptions are the settings of the standalone pool sources.
type StandaloneOptions struct {
	// IMDSEndpoint is the Instance Metadata Service's base URL.
	IMDSEndpoint string
	// MAC selects the NIC among several (IMDS source).
	MAC string
	// VNetCIDRs is the VNet's address space (IMDS source: IMDS does not
	// report it).
	VNetCIDRs []string
	// Resync is how often a standalone source re-reads the pool.
	Resync time.Duration
	// NICID and VMID name the NIC the ARM source keeps.
	NICID, VMID string
	// VNetShare is the ARM source's local cap on the VNet's limit.
	VNetShare int
	// ContainerRuntime names the runtime for --cni-version=auto, as a
	// Node's containerRuntimeVersion would ("containerd://1.6.20").
	ContainerRuntime string
	// Azure configures the ARM client (pool source arm); Auth is a string
	// until Validate because the flag is.
	Azure    azure.Config
	authMode string
}

// bindStandaloneFlags registers the standalone options on fs.
func (o *Options) bindStandaloneFlags(fs *pflag.FlagSet) {
	s := &o.Standalone
	fs.StringVar(&o.PoolSource, "pool-source", o.PoolSource, "where the node's pool comes from: nodeippool (Kubernetes: the NodeIPPool the operator keeps), arm (no Kubernetes: the agent keeps its VM's NIC through ARM) or imds (no Kubernetes: the secondary IPs an administrator created on the NIC, read from instance metadata and only handed out)")
	fs.StringVar(&s.IMDSEndpoint, "imds-endpoint", s.IMDSEndpoint, "instance metadata service base URL (--pool-source=imds)")
	fs.StringVar(&s.MAC, "nic-mac", s.MAC, "MAC address of the NIC to use when the VM has several (--pool-source=imds); the first NIC when empty")
	fs.StringSliceVar(&s.VNetCIDRs, "vnet-cidrs", s.VNetCIDRs, "the VNet's address space, not masqueraded (--pool-source=imds; instance metadata does not report it); the NIC's subnet when empty")
	fs.DurationVar(&s.Resync, "pool-resync", s.Resync, "how often a standalone agent re-reads its pool (--pool-source=arm or imds)")
	fs.StringVar(&s.NICID, "nic-id", s.NICID, "ARM ID of the VM's NIC (--pool-source=arm)")
	fs.StringVar(&s.VMID, "vm-id", s.VMID, "ARM ID of the VM, to find its NIC when --nic-id is not given (--pool-source=arm)")
	fs.IntVar(&s.VNetShare, "vnet-share", s.VNetShare, fmt.Sprintf("most secondary IPs this agent keeps on its NIC as its share of the VNet's limit (--pool-source=arm); standalone agents do not know of each other, so keeping the sum over the VNet's VMs under the VNet's limit is the administrator's job; at most %d", pool.MaxIPsPerNode))
	fs.StringVar(&s.Azure.Cloud, "cloud", s.Azure.Cloud, "Azure cloud (--pool-source=arm): AzurePublic, AzureChina or AzureUSGovernment")
	fs.StringVar(&s.Azure.ARMEndpoint, "arm-endpoint", s.Azure.ARMEndpoint, "ARM endpoint override (https), e.g. the simulated VNet's (--pool-source=arm)")
	fs.StringVar(&s.Azure.CACertFile, "arm-ca-file", s.Azure.CACertFile, "extra PEM CA bundle to trust for the ARM endpoint (--pool-source=arm)")
	s.authMode = string(azure.AuthManagedIdentity)
	fs.StringVar(&s.authMode, "auth-mode", s.authMode, "ARM credential (--pool-source=arm): managed-identity (the VM's), default, or none (loopback endpoints only)")
	fs.StringVar(&s.Azure.ClientID, "client-id", s.Azure.ClientID, "client ID of a user-assigned managed identity (--pool-source=arm)")
	fs.StringVar(&s.ContainerRuntime, "container-runtime", s.ContainerRuntime, "container runtime and release for --cni-version=auto without Kubernetes, e.g. containerd://1.6.20 (CNI 1.0.0 when empty)")
}

// validateStandalone reports invalid standalone options.
func (o *Options) validateStandalone() []error {
	var errs []error
	s := &o.Standalone
	switch o.PoolSource {
	case PoolSourceNodeIPPool:
		return nil
	case PoolSourceIMDS:
		if !strings.HasPrefix(s.IMDSEndpoint, "http://") {
			errs = append(errs, fmt.Errorf("--imds-endpoint %q must be an http:// URL, as instance metadata is", s.IMDSEndpoint))
		}
		for _, c := range s.VNetCIDRs {
			if p, err := netip.ParsePrefix(c); err != nil || !p.Addr().Is4() {
				errs = append(errs, fmt.Errorf("--vnet-cidrs: %q is not an IPv4 CIDR", c))
			}
		}
	case PoolSourceARM:
		o.Standalone.Azure.Auth = azure.AuthMode(s.authMode)
		if err := o.Standalone.Azure.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("azure: %w", err))
		}
		if s.NICID == "" && s.VMID == "" {
			errs = append(errs, errors.New("--pool-source=arm needs --nic-id or --vm-id"))
		}
		if s.VNetShare < 0 || s.VNetShare > pool.MaxIPsPerNode {
			errs = append(errs, fmt.Errorf("--vnet-share %d must be between 0 (the per-VM limit) and %d", s.VNetShare, pool.MaxIPsPerNode))
		}
	default:
		errs = append(errs, fmt.Errorf("--pool-source %q must be nodeippool, arm or imds", o.PoolSource))
	}
	if s.Resync <= 0 {
		errs = append(errs, fmt.Errorf("--pool-resync %s must be positive", s.Resync))
	}
	return errs
}

// standalonePool builds a standalone pool source. There are no pods: GC
// keeps every allocation until the runtime's DEL or CNI GC releases it, or
// until the agent finds at start that its veth is gone.
func standalonePool(o Options, d Deps, alloc *ipam.Allocator) (gc.PodLister, func(context.Context) error, error) {
	var (
		src     poolsource.Source
		backoff time.Duration
	)
	log := d.Log.WithName("pool").WithValues("source", o.PoolSource)
	switch o.PoolSource {
	case PoolSourceIMDS:
		held := func() []string {
			recs := alloc.Records()
			out := make([]string, 0, len(recs))
			for _, r := range recs {
				out = append(out, r.IP)
			}
			return out
		}
		s, err := imdspool.New(imdspool.Config{Endpoint: o.Standalone.IMDSEndpoint, MAC: o.Standalone.MAC, VNetAddressSpace: o.Standalone.VNetCIDRs, Held: held, Log: log})
		if err != nil {
			return nil, nil, err
		}
		src, backoff = s, 2*time.Second
	case PoolSourceARM:
		if d.NICs == nil {
			return nil, nil, errors.New("pool source arm needs an arm client, and none was given")
		}
		s, err := armpool.New(armpool.Config{NICs: d.NICs, NICID: o.Standalone.NICID, VMID: o.Standalone.VMID, VNetShare: o.Standalone.VNetShare, Log: log})
		if err != nil {
			return nil, nil, err
		}
		src, backoff = s, 2*time.Second
	default:
		return nil, nil, fmt.Errorf("unknown pool source %q", o.PoolSource)
	}
	run := func(ctx context.Context) error {
		return poolsource.Run(ctx, src, poolsource.Config{
			Allocator: alloc, Resync: o.Standalone.Resync, ErrorBackoff: backoff, Log: log, Name: o.PoolSource,
		})
	}
	noPods := func(context.Context) ([]gc.Pod, error) { return nil, nil }
	return noPods, run, nil
}
