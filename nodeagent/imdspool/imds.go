// Package imdspool is the standalone agent's read-only pool source: the
// secondary IP configurations an administrator created on the VM's NIC
// beforehand (as Azure documents for Docker hosts), read from the Instance
// Metadata Service. The agent only hands them out; it never asks for more
// nor gives any back. It re-reads them periodically to learn of added and
// removed ones.
package imdspool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/poolsource"
)

// Defaults of Config.
const (
	// DefaultEndpoint is Azure's Instance Metadata Service.
	DefaultEndpoint = "http://169.254.169.254"
	// APIVersion is the IMDS API version the source asks for.
	APIVersion = "2021-02-01"
	// DefaultTimeout bounds one request; IMDS answers locally in
	// milliseconds.
	DefaultTimeout = 5 * time.Second
	// maxBody bounds what the source reads of an answer: a NIC's 256 IP
	// configurations fit in a few tens of kilobytes.
	maxBody = 1 << 20
)

// Config configures a Source.
type Config struct {
	// Endpoint is the IMDS base URL; DefaultEndpoint if empty.
	Endpoint string
	// MAC selects the NIC (IMDS's macAddress, any case, with or without
	// separators); the first interface if empty.
	MAC string
	// VNetAddressSpace is the VNet's address space, which IMDS does not
	// report: destinations inside it are not masqueraded. The NIC's subnet
	// if empty.
	VNetAddressSpace []string
	// Timeout bounds one request; DefaultTimeout if zero.
	Timeout time.Duration
	// Held returns the IPs attachments hold, to report those the NIC lost.
	Held func() []string
	// Log receives changes of the pool.
	Log logr.Logger
}

// Source reads the pool from IMDS.
type Source struct {
	cfg    Config
	client *http.Client
	// last is the set of IPs last observed, to log changes.
	last map[string]bool
	// missing are held IPs already reported as removed from the NIC.
	missing map[string]bool
}

var _ poolsource.Source = (*Source)(nil)

// New returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if !strings.HasPrefix(cfg.Endpoint, "http://") {
		return nil, fmt.Errorf("imds endpoint %q: must be a plain http:// URL, as Azure's is", cfg.Endpoint)
	}
	for _, c := range cfg.VNetAddressSpace {
		if p, err := netip.ParsePrefix(c); err != nil || !p.Addr().Is4() {
			return nil, fmt.Errorf("vnet address space: %q is not an IPv4 CIDR", c)
		}
	}
	return &Source{
		cfg: cfg,
		// Never through a proxy: IMDS answers only requests that reach it
		// straight from the VM, and refuses relayed ones.
		client: &http.Client{
			Timeout:   cfg.Timeout,
			Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: cfg.Timeout}).DialContext},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("imds answered with a redirect")
			},
		},
		last:    map[string]bool{},
		missing: map[string]bool{},
	}, nil
}

// ReadOnly is true: the administrator decides the pool.
func (s *Source) ReadOnly() bool { return true }

// Request does nothing: a pre-provisioned pool neither grows nor shrinks.
func (s *Source) Request(context.Context, ipam.PoolState, ipam.SpecPlan) error { return nil }

// Observe reads the NIC from IMDS: its first IP configuration is the VM's
// primary, never handed out; the others are the pool.
func (s *Source) Observe(ctx context.Context) (ipam.PoolState, error) {
	netw, err := s.fetch(ctx)
	if err != nil {
		return ipam.PoolState{}, err
	}
	st, err := s.stateOf(netw)
	if err != nil {
		return ipam.PoolState{}, fmt.Errorf("read the nic from instance metadata: %w", err)
	}
	s.report(st)
	return st, nil
}

// network is the part of IMDS's /metadata/instance/network answer the
// source reads.
type network struct {
	Interface []iface `json:"interface"`
}

// iface is one NIC in IMDS's answer.
type iface struct {
	IPv4 struct {
		IPAddress []struct {
			PrivateIPAddress string `json:"privateIpAddress"`
		} `json:"ipAddress"`
		Subnet []struct {
			Address string `json:"address"`
			Prefix  string `json:"prefix"`
		} `json:"subnet"`
	} `json:"ipv4"`
	MacAddress string `json:"macAddress"`
}

func (s *Source) fetch(ctx context.Context) (*network, error) {
	url := strings.TrimSuffix(s.cfg.Endpoint, "/") + "/metadata/instance/network?api-version=" + APIVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("build instance metadata request %s: %w", url, err)
	}
	req.Header.Set("Metadata", "true")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read instance metadata %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read instance metadata %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read instance metadata %s: status %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 300)])))
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("read instance metadata %s: the answer is larger than %d bytes", url, maxBody)
	}
	var n network
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("decode instance metadata %s: %w", url, err)
	}
	return &n, nil
}

// stateOf checks IMDS's answer and converts the chosen NIC to a pool.
func (s *Source) stateOf(n *network) (ipam.PoolState, error) {
	if len(n.Interface) == 0 {
		return ipam.PoolState{}, errors.New("instance metadata lists no network interface")
	}
	idx := 0
	if s.cfg.MAC != "" {
		idx = slices.IndexFunc(n.Interface, func(i iface) bool { return normalMAC(i.MacAddress) == normalMAC(s.cfg.MAC) })
		if idx < 0 {
			return ipam.PoolState{}, fmt.Errorf("instance metadata lists no interface with mac address %s", s.cfg.MAC)
		}
	}
	ifc := n.Interface[idx].IPv4
	if len(ifc.Subnet) == 0 {
		return ipam.PoolState{}, fmt.Errorf("interface %s has no ipv4 subnet", n.Interface[idx].MacAddress)
	}
	bits, err := strconv.Atoi(ifc.Subnet[0].Prefix)
	if err != nil {
		return ipam.PoolState{}, fmt.Errorf("interface %s: subnet prefix %q is not a number", n.Interface[idx].MacAddress, ifc.Subnet[0].Prefix)
	}
	base, err := netip.ParseAddr(ifc.Subnet[0].Address)
	if err != nil || !base.Is4() || bits < 0 || bits > 32 {
		return ipam.PoolState{}, fmt.Errorf("interface %s: subnet %s/%s is not an IPv4 prefix", n.Interface[idx].MacAddress, ifc.Subnet[0].Address, ifc.Subnet[0].Prefix)
	}
	subnet := netip.PrefixFrom(base, bits).Masked()
	if len(ifc.IPAddress) == 0 {
		return ipam.PoolState{}, fmt.Errorf("interface %s has no ipv4 address", n.Interface[idx].MacAddress)
	}
	st := ipam.PoolState{Found: true, SubnetCIDR: subnet.String(), VNetAddressSpace: s.cfg.VNetAddressSpace}
	if len(st.VNetAddressSpace) == 0 {
		st.VNetAddressSpace = []string{subnet.String()}
	}
	seen := map[netip.Addr]bool{}
	for i, a := range ifc.IPAddress {
		ip, err := netip.ParseAddr(a.PrivateIPAddress)
		if err != nil || !ip.Is4() || !subnet.Contains(ip) {
			return ipam.PoolState{}, fmt.Errorf("interface %s: address %q is not an IPv4 address of subnet %s", n.Interface[idx].MacAddress, a.PrivateIPAddress, subnet)
		}
		if seen[ip] {
			return ipam.PoolState{}, fmt.Errorf("interface %s lists address %s twice", n.Interface[idx].MacAddress, ip)
		}
		seen[ip] = true
		if i == 0 {
			st.PrimaryIP = ip.String() // the VM's own address: never handed out
			continue
		}
		st.IPs = append(st.IPs, ip.String())
	}
	st.Requested = len(st.IPs)
	return st, nil
}

func normalMAC(m string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", ":", "").Replace(m))
}

// report logs IPs added to and removed from the NIC, and held IPs the NIC
// lost: their containers keep them (removing a running container's address
// is the administrator's call, not the agent's), but the VNet no longer
// delivers their traffic. The metric nicpool_agent_held_ips_outside_pool
// counts them.
func (s *Source) report(st ipam.PoolState) {
	now := make(map[string]bool, len(st.IPs))
	for _, ip := range st.IPs {
		now[ip] = true
		if !s.last[ip] {
			s.cfg.Log.Info("Found a secondary IP on the NIC", "ip", ip)
		}
	}
	for ip := range s.last {
		if !now[ip] {
			s.cfg.Log.Info("A secondary IP was removed from the NIC", "ip", ip)
		}
	}
	s.last = now
	if s.cfg.Held == nil {
		return
	}
	missing := map[string]bool{}
	for _, ip := range s.cfg.Held() {
		if now[ip] {
			continue
		}
		missing[ip] = true
		if !s.missing[ip] {
			s.cfg.Log.Info("An IP held by a container was removed from the NIC; the container keeps it but the VNet no longer delivers its traffic", "ip", ip)
		}
	}
	s.missing = missing
}
