package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"

	"github.com/nicpool/nicpool/internal/armsim"
)

// Site is a network outside the VNet (or a VNet peered with it), reached
// through the fabric: one namespace with one host in it.
type Site struct {
	Name    string
	CIDR    string // the site's address space
	HostIP  string // the one host, which runs the probe server
	Gateway string // the fabric's address towards the site
	NS      *Namespace
}

// Addresses of the simulated world. The VNet uses Azure's usual private
// range; the other sites use ranges that cannot collide with it, and the
// internet uses a documentation range (RFC 5737).
const (
	VNetCIDR    = "10.240.0.0/16"
	VNetGateway = "10.240.0.1"
	// ApplianceCIDR is a second address space of the VNet holding the subnet
	// "appliances", where Config.Appliances VMs (network virtual appliances) live:
	// Azure applies a subnet's route table to what its VMs forward too, so an
	// appliance must sit outside the subnets whose routes point at it.
	ApplianceCIDR    = "10.241.0.0/24"
	ApplianceGateway = "10.241.0.1"
	// OtherSubnetCIDR is a third address space of the VNet holding the subnet
	// "nodes-b" of Config.OtherSubnetVMs.
	OtherSubnetCIDR    = "10.242.0.0/24"
	OtherSubnetGateway = "10.242.0.1"
	OtherSubnetName    = "nodes-b"
	PeerCIDR           = "10.250.0.0/16"
	OnPremCIDR         = "192.168.50.0/24"
	InternetCIDR       = "203.0.113.0/24"
	internetLinkNm     = "f-inet"
)

// fabric is the namespace standing for Azure's SDN: it delivers traffic for
// every IP configuration armsim holds to the VM whose NIC holds it, drops
// traffic for VNet addresses no NIC holds, and lets only primary IPs reach
// the internet.
type fabric struct {
	ns *Namespace

	mu      sync.Mutex
	vms     map[string]*VM // by lower-case VM resource ID
	applied map[string]*VM // IP -> VM whose route and neighbour are installed
	// Guarded by mu: what enforce works from and what it last achieved.
	lastSnap       *armsim.Snapshot
	health         map[string]bool // probeTarget.key() -> backend healthy
	probes         []probeTarget
	enforced       uint64          // armsim version whose state is enforced
	enforcedHealth map[string]bool // health the enforced rules were built from
	enforcedCh     chan struct{}   // closed and replaced on each enforce

	// storage is set once the storage site exists (before the fabric follows armsim).
	storage bool

	policyMu  sync.Mutex // serialises enforce; guards the fields below
	policy    *policy
	gen       int
	frontends map[netip.Addr]bool
	udr       udrState
}

func newFabric(n *Namespace) (*fabric, error) {
	f := &fabric{ns: n, vms: map[string]*VM{}, applied: map[string]*VM{}, health: map[string]bool{},
		enforcedCh: make(chan struct{}), frontends: map[netip.Addr]bool{}, udr: udrState{keys: map[int]string{}}}
	err := n.Do(func(ns.NetNS) error {
		if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
		// The VNet gateway address sits on the fabric's loopback: Linux
		// answers ARP for any local address on every interface, which is
		// what each VM's eth0 needs. (Not a dummy link: some kernels build
		// without it.)
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if err := addAddr(lo, VNetGateway+"/32"); err != nil {
			return err
		}
		for _, sn := range [][2]string{{ApplianceGateway, ApplianceCIDR}, {OtherSubnetGateway, OtherSubnetCIDR}} {
			if err := addAddr(lo, sn[0]+"/32"); err != nil {
				return err
			}
			_, prefix, _ := net.ParseCIDR(sn[1])
			if err := netlink.RouteAdd(&netlink.Route{Dst: prefix, Type: unixRTNBlackhole}); err != nil {
				return fmt.Errorf("blackhole %s: %w", sn[1], err)
			}
		}
		if err := installHooks(); err != nil {
			return err
		}
		_, vnet, _ := net.ParseCIDR(VNetCIDR)
		// Addresses no NIC holds go nowhere, as in Azure.
		return netlink.RouteAdd(&netlink.Route{Dst: vnet, Type: unixRTNBlackhole})
	})
	if err != nil {
		return nil, fmt.Errorf("set up fabric: %w", err)
	}
	return f, nil
}

const unixRTNBlackhole = 6 // RTN_BLACKHOLE

// connect makes a veth between the fabric (fabName) and other (eth0), gives
// eth0 addr (CIDR form) with a default route via gw, and returns eth0's MAC.
// fabAddr, when set, is the fabric side's own address on the link.
func (f *fabric) connect(other *Namespace, fabName, addr, gw, fabAddr string) (net.HardwareAddr, error) {
	err := f.ns.Do(func(ns.NetNS) error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: fabName},
			PeerName:      "eth0",
			PeerNamespace: netlink.NsFd(int(other.Fd())),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s: %w", fabName, err)
		}
		link, err := netlink.LinkByName(fabName)
		if err != nil {
			return fmt.Errorf("find %s: %w", fabName, err)
		}
		if fabAddr != "" {
			if err := addAddr(link, fabAddr); err != nil {
				return err
			}
		} else if err := writeSysctl("net/ipv4/conf/"+fabName+"/proxy_arp", "1"); err != nil {
			return err
		}
		return netlink.LinkSetUp(link)
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s to the fabric: %w", other.Name, err)
	}
	var mac net.HardwareAddr
	err = other.Do(func(ns.NetNS) error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return fmt.Errorf("find eth0 in %s: %w", other.Name, err)
		}
		if err := addAddr(eth0, addr); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(eth0); err != nil {
			return fmt.Errorf("set eth0 up in %s: %w", other.Name, err)
		}
		mac = eth0.Attrs().HardwareAddr
		return netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw), LinkIndex: eth0.Attrs().Index})
	})
	if err != nil {
		return nil, fmt.Errorf("configure eth0 in %s: %w", other.Name, err)
	}
	return mac, nil
}

// allowInternet lets only the VMs' primary IPs out to the internet and only
// answers back in, like a VNet without public IPs behind Azure's default
// outbound access.
func (f *fabric) allowInternet(primaryIPs []string) error {
	links := []string{internetLinkNm}
	if f.storage {
		// Storage's public endpoint is reached as internet traffic, except over a
		// service endpoint (accepted by the policy's chain before these rules).
		links = append(links, storageLinkNm)
	}
	err := f.ns.Do(func(ns.NetNS) error {
		ipt, err := iptables.New()
		if err != nil {
			return fmt.Errorf("iptables in fabric: %w", err)
		}
		rules := [][]string{}
		if f.storage {
			// Anyone on the internet reaches Storage's public endpoint (its
			// firewall decides), without address translation.
			rules = append(rules, []string{"-i", internetLinkNm, "-o", storageLinkNm, "-j", "ACCEPT"})
		}
		for _, link := range links {
			for _, ip := range primaryIPs {
				rules = append(rules, []string{"-o", link, "-s", ip + "/32", "-j", "ACCEPT"})
			}
			rules = append(rules,
				[]string{"-o", link, "-j", "DROP"},
				[]string{"-i", link, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
				[]string{"-i", link, "-j", "DROP"},
			)
		}
		for _, r := range rules {
			if err := ipt.Append("filter", "FORWARD", r...); err != nil {
				return fmt.Errorf("fabric rule %v: %w", r, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("allow the VMs' primary IPs out to the internet: %w", err)
	}
	return nil
}

// sync installs a /32 route and a permanent neighbour entry (the VM's MAC)
// for every IP configuration in snap, and removes those that are gone.
func (f *fabric) sync(snap armsim.Snapshot) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := map[string]*VM{}
	for _, nic := range snap.NICs {
		vm := f.vms[lower(nic.VMID)]
		if vm == nil {
			continue
		}
		// Every configuration ARM holds is delivered, also while the NIC is
		// Updating: an update does not interrupt the addresses it keeps,
		// and the operator publishes new ones only after the PUT succeeded.
		for _, c := range nic.IPConfigs {
			want[c.IP] = vm
		}
	}
	err := f.ns.Do(func(ns.NetNS) error {
		for ip, vm := range f.applied {
			if want[ip] == vm {
				continue
			}
			if err := f.unroute(ip, vm); err != nil {
				return err
			}
			delete(f.applied, ip)
		}
		for ip, vm := range want {
			if f.applied[ip] == vm {
				continue
			}
			if err := f.route(ip, vm); err != nil {
				return err
			}
			f.applied[ip] = vm
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync fabric routes to version %d: %w", snap.Version, err)
	}
	return nil
}

func (f *fabric) route(ip string, vm *VM) error {
	link, err := netlink.LinkByName(vm.fabricLink)
	if err != nil {
		return fmt.Errorf("find %s: %w", vm.fabricLink, err)
	}
	dst := &net.IPNet{IP: net.ParseIP(ip).To4(), Mask: net.CIDRMask(32, 32)}
	if err := netlink.RouteReplace(&netlink.Route{Dst: dst, LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s to %s: %w", ip, vm.Name, err)
	}
	neigh := &netlink.Neigh{LinkIndex: link.Attrs().Index, IP: dst.IP, HardwareAddr: vm.MAC, State: netlink.NUD_PERMANENT}
	if err := netlink.NeighSet(neigh); err != nil {
		return fmt.Errorf("neighbour %s on %s: %w", ip, vm.Name, err)
	}
	return nil
}

func (f *fabric) unroute(ip string, vm *VM) error {
	link, err := netlink.LinkByName(vm.fabricLink)
	if err != nil {
		return fmt.Errorf("find %s: %w", vm.fabricLink, err)
	}
	dst := &net.IPNet{IP: net.ParseIP(ip).To4(), Mask: net.CIDRMask(32, 32)}
	_ = netlink.NeighDel(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: dst.IP})
	err = netlink.RouteDel(&netlink.Route{Dst: dst, LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK})
	if err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove route %s: %w", ip, err)
	}
	return nil
}

// follow keeps the fabric in step with armsim until ctx ends.
func (f *fabric) follow(ctx context.Context, sim *armsim.Server, errs chan<- error) {
	var version uint64
	for {
		snap := sim.Snapshot()
		err := f.sync(snap)
		if err == nil {
			f.setSnapshot(snap)
			err = f.enforce()
		}
		if err != nil {
			select {
			case errs <- err:
			default:
			}
		}
		version = snap.Version
		if _, err := sim.WaitForChange(ctx, version); err != nil {
			return
		}
	}
}

func addAddr(link netlink.Link, cidr string) error {
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("parse %s: %w", cidr, err)
	}
	if err := netlink.AddrAdd(link, a); err != nil {
		return fmt.Errorf("add %s to %s: %w", cidr, link.Attrs().Name, err)
	}
	return nil
}

// writeSysctl sets a sysctl of the calling thread's network namespace.
func writeSysctl(name, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", name), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s=%s: %w", name, value, err)
	}
	return nil
}
