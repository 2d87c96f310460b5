// Package armpool is the standalone agent's self-managed pool source: the
// agent keeps its own VM's NIC through ARM, with the VM's managed identity,
// as the operator keeps each node's NIC in a cluster. It reuses the
// operator's NIC reconcile logic (internal/nicsync): one If-Match write per
// pass with every addition and removal, re-read and re-planned on 412;
// two-phase release (an IP is removed only after the allocator promised
// never to hand it out again, and only from the configuration it was offered
// under); adoption of nicpool's configurations found on the NIC after a
// crash; the per-VM limit. The per-VNet limit cannot be enforced across
// standalone agents, which do not know of each other: VNetShare is this
// agent's local cap, the administrator's to size so that the sum over the
// VNet's VMs stays under the VNet's limit.
package armpool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/nicsync"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/poolsource"
)

// NICAPI is the part of the ARM client the source uses (azure.NICClient).
// UpdateNIC sends If-Match with nic.Etag.
type NICAPI interface {
	GetNIC(ctx context.Context, nicID string) (*armnetwork.Interface, error)
	UpdateNIC(ctx context.Context, nic *armnetwork.Interface) (*armnetwork.Interface, error)
	FindNICForVM(ctx context.Context, vmID string) (string, error)
	GetSubnet(ctx context.Context, subnetID string) (*armnetwork.Subnet, error)
	GetVNet(ctx context.Context, vnetID string) (*armnetwork.VirtualNetwork, error)
}

// Waits after refusals that say when to come back.
const (
	// maxWriteAttempts bounds the re-read and re-plan loop on 412.
	maxWriteAttempts = 3
	// DefaultFullRetry is how long a full subnet or NIC is left alone.
	DefaultFullRetry = 30 * time.Second
	// DefaultBusyRetry is the wait after 409 or a write still running.
	DefaultBusyRetry = time.Second
	// DefaultThrottleRetry is the wait after a 429 without Retry-After.
	DefaultThrottleRetry = 10 * time.Second
)

// Config configures a Source.
type Config struct {
	// NICs reaches ARM.
	NICs NICAPI
	// NICID is the VM's NIC; when empty it is found from VMID.
	NICID string
	// VMID is the VM's ARM ID (IMDS's compute.resourceId), used when NICID
	// is empty.
	VMID string
	// PerVMLimit caps nicpool's IPs on the NIC; pool.MaxIPsPerNode if zero.
	PerVMLimit int
	// VNetShare is this agent's local cap on the VNet's limit; PerVMLimit
	// if zero.
	VNetShare int
	// FullRetry, BusyRetry, ThrottleRetry override the waits (tests).
	FullRetry, BusyRetry, ThrottleRetry time.Duration
	// NewName names new IP configurations; nicsync.NewConfigName if nil.
	NewName func() string
	// Log receives writes and repairs.
	Log logr.Logger
}

// Source keeps the VM's NIC pool. Run (poolsource) calls it from one
// goroutine.
type Source struct {
	cfg Config

	nicID, subnetID, subnetCIDR string
	vnetSpace                   []string
	// nic is the NIC as last read.
	nic *armnetwork.Interface
	// published maps each IP last offered to the allocator to its
	// configuration name (status.ips of a NodeIPPool).
	published map[string]string
	// released are the IPs the allocator gave back (spec.ipsNotInUse).
	released map[string]bool
	// requested is the allocator's last plan.Requested.
	requested int
}

var _ poolsource.Source = (*Source)(nil)

// New returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.NICs == nil {
		return nil, errors.New("create arm pool source: no arm client")
	}
	if cfg.NICID == "" && cfg.VMID == "" {
		return nil, errors.New("create arm pool source: neither a nic id nor a vm id")
	}
	if cfg.PerVMLimit <= 0 {
		cfg.PerVMLimit = pool.MaxIPsPerNode
	}
	if cfg.VNetShare <= 0 {
		cfg.VNetShare = cfg.PerVMLimit
	}
	if cfg.NewName == nil {
		cfg.NewName = nicsync.NewConfigName
	}
	cfg.FullRetry = max(cfg.FullRetry, 0)
	if cfg.FullRetry == 0 {
		cfg.FullRetry = DefaultFullRetry
	}
	if cfg.BusyRetry <= 0 {
		cfg.BusyRetry = DefaultBusyRetry
	}
	if cfg.ThrottleRetry <= 0 {
		cfg.ThrottleRetry = DefaultThrottleRetry
	}
	return &Source{cfg: cfg, nicID: cfg.NICID, published: map[string]string{}, released: map[string]bool{}}, nil
}

// ReadOnly is false: the agent writes its NIC.
func (s *Source) ReadOnly() bool { return false }

// Observe reads the NIC and offers the allocator nicpool's configurations
// whose write succeeded, the ones an earlier run left behind included.
func (s *Source) Observe(ctx context.Context) (ipam.PoolState, error) {
	if err := s.identify(ctx); err != nil {
		return ipam.PoolState{}, retryable(err, s.cfg)
	}
	nic, err := s.cfg.NICs.GetNIC(ctx, s.nicID)
	if err != nil {
		return ipam.PoolState{}, retryable(fmt.Errorf("read nic %s: %w", s.nicID, err), s.cfg)
	}
	primary := nicsync.PrimaryConfig(nic)
	if primary == nil || primary.Properties == nil || primary.Properties.PrivateIPAddress == nil {
		return ipam.PoolState{}, fmt.Errorf("read nic %s: no primary ip configuration with an address", s.nicID)
	}
	s.nic = nic
	settled := azure.NICProvisioning(nic) == azure.ProvisioningSucceeded
	offered := nicsync.Publish(nicsync.Configs(nic), s.released, s.published, settled)
	st := ipam.PoolState{
		Found: true, Requested: s.requested, SubnetCIDR: s.subnetCIDR,
		PrimaryIP: *primary.Properties.PrivateIPAddress, VNetAddressSpace: s.vnetSpace,
	}
	published := make(map[string]string, len(offered))
	for _, p := range offered {
		ip := string(p.IP)
		published[ip] = p.IPConfiguration
		st.IPs = append(st.IPs, ip)
		if s.released[ip] {
			st.NotInUse = append(st.NotInUse, ip)
		}
	}
	s.published = published
	// Drop released IPs no longer on the NIC: phase 2 is done for them.
	for ip := range s.released {
		if _, ok := published[ip]; !ok {
			delete(s.released, ip)
		}
	}
	return st, nil
}

// identify finds the NIC, its subnet and its VNet's address space once.
func (s *Source) identify(ctx context.Context) error {
	if s.subnetCIDR != "" {
		return nil
	}
	if s.nicID == "" {
		id, err := s.cfg.NICs.FindNICForVM(ctx, s.cfg.VMID)
		if err != nil {
			return fmt.Errorf("find the nic of vm %s: %w", s.cfg.VMID, err)
		}
		s.nicID = id
	}
	nic, err := s.cfg.NICs.GetNIC(ctx, s.nicID)
	if err != nil {
		return fmt.Errorf("read nic %s: %w", s.nicID, err)
	}
	primary := nicsync.PrimaryConfig(nic)
	if primary == nil || primary.Properties == nil || primary.Properties.Subnet == nil || primary.Properties.Subnet.ID == nil {
		return fmt.Errorf("read nic %s: no primary ip configuration with a subnet", s.nicID)
	}
	subnetID := *primary.Properties.Subnet.ID
	vnetID, err := azure.VNetIDFromSubnetID(subnetID)
	if err != nil {
		return fmt.Errorf("read nic %s: %w", s.nicID, err)
	}
	subnet, err := s.cfg.NICs.GetSubnet(ctx, subnetID)
	if err != nil {
		return fmt.Errorf("read subnet %s: %w", subnetID, err)
	}
	vnet, err := s.cfg.NICs.GetVNet(ctx, vnetID)
	if err != nil {
		return fmt.Errorf("read vnet %s: %w", vnetID, err)
	}
	cidr := nicsync.SubnetCIDR(subnet)
	if cidr == "" {
		return fmt.Errorf("read subnet %s: no address prefix", subnetID)
	}
	s.subnetID, s.vnetSpace, s.subnetCIDR = subnetID, nicsync.AddressSpace(vnet), cidr
	s.cfg.Log.Info("Found the VM's NIC", "nic", s.nicID, "subnet", cidr, "vnetAddressSpace", strings.Join(s.vnetSpace, ","))
	return nil
}

// Request makes the NIC hold plan: plan.Requested IPs (within the per-VM
// limit and the VNet share), without the ones plan.NotInUse gave back.
func (s *Source) Request(ctx context.Context, _ ipam.PoolState, plan ipam.SpecPlan) error {
	if s.nic == nil {
		return nil
	}
	s.requested = plan.Requested
	for _, ip := range plan.NotInUse {
		s.released[ip] = true
	}
	w := &selfWrite{s: s, maxAdds: -1}
	updated, err := nicsync.Write(ctx, s.cfg.NICs, s.nic, s.subnetID, w)
	s.nic = updated
	if err == nil && w.wrote {
		// Offer what the write added now, not at the next resync: the
		// allocations waiting for it are why it was made.
		return poolsource.ErrStale
	}
	return err
}
