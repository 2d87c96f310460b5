package armsim

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// IMDS paths the emulator serves, as Azure's Instance Metadata Service does
// at http://169.254.169.254.
const (
	IMDSNetworkPath  = "/metadata/instance/network"
	IMDSInstancePath = "/metadata/instance"
)

// IMDSNetwork is the body of GET /metadata/instance/network, in Azure's
// JSON shape.
type IMDSNetwork struct {
	Interface []IMDSInterface `json:"interface"`
}

// IMDSInterface is one NIC of the VM.
type IMDSInterface struct {
	IPv4       IMDSIPv4 `json:"ipv4"`
	IPv6       IMDSIPv6 `json:"ipv6"`
	MacAddress string   `json:"macAddress"`
}

// IMDSIPv4 lists a NIC's IPv4 configurations (the primary first) and its subnet.
type IMDSIPv4 struct {
	IPAddress []IMDSIPAddress `json:"ipAddress"`
	Subnet    []IMDSSubnet    `json:"subnet"`
}

// IMDSIPv6 is empty: the emulator has no IPv6.
type IMDSIPv6 struct {
	IPAddress []IMDSIPAddress `json:"ipAddress"`
}

// IMDSIPAddress is one IP configuration's addresses.
type IMDSIPAddress struct {
	PrivateIPAddress string `json:"privateIpAddress"`
	PublicIPAddress  string `json:"publicIpAddress"`
}

// IMDSSubnet is a subnet as IMDS writes it: network address and prefix length.
type IMDSSubnet struct {
	Address string `json:"address"`
	Prefix  string `json:"prefix"`
}

// IMDSHandler serves the Instance Metadata Service's network endpoints
// (plain HTTP, as Azure's). Each caller sees only its own VM: it is
// identified by the request's source address, which must be an address of
// one of the VM's NIC IP configurations (the fabric delivers only those from
// the VM that holds them). Like Azure, it refuses requests without the
// "Metadata: true" header or with X-Forwarded-For (a proxy relaying for
// someone else), and without api-version.
func (s *Server) IMDSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveIMDS(w, r, "") })
}

// IMDSHandlerFor is IMDSHandler for a listener that only vmID can reach
// (the testbed binds one to each VM's link): a request whose source address
// is not one of that VM's is refused too, so a VM that sends from another's
// address learns nothing.
func (s *Server) IMDSHandlerFor(vmID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveIMDS(w, r, vmID) })
}

func (s *Server) serveIMDS(w http.ResponseWriter, r *http.Request, vmID string) {
	status, body := s.imds(r, vmID)
	s.opts.Logf("armsim imds: %s %s from %s -> %d", r.Method, r.URL.Path, r.RemoteAddr, status)
	writeJSON(w, status, body)
}

func imdsError(msg string) map[string]string { return map[string]string{"error": msg} }

func (s *Server) imds(r *http.Request, vmID string) (int, any) {
	switch {
	case r.Header.Get("X-Forwarded-For") != "":
		return http.StatusBadRequest, imdsError("Bad request. The request contains an X-Forwarded-For header and was refused")
	case !strings.EqualFold(r.Header.Get("Metadata"), "true"):
		return http.StatusBadRequest, imdsError("Bad request. Required metadata header not specified")
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, imdsError("Method not allowed")
	case r.URL.Query().Get("api-version") == "":
		return http.StatusBadRequest, imdsError("Bad request. api-version was not specified in the request")
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return http.StatusForbidden, imdsError("Forbidden. The caller is not a virtual machine")
	}
	src, err := netip.ParseAddr(host)
	if err != nil {
		return http.StatusForbidden, imdsError("Forbidden. The caller is not a virtual machine")
	}
	netw, owner, ok := s.imdsNetworkOf(src.Unmap(), vmID)
	if !ok {
		return http.StatusForbidden, imdsError("Forbidden. The caller is not a virtual machine")
	}
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case IMDSIdentityPath:
		return s.issueIdentityToken(r, owner)
	case IMDSNetworkPath:
		return http.StatusOK, netw
	case IMDSInstancePath:
		return http.StatusOK, map[string]any{"network": netw}
	}
	return http.StatusNotFound, imdsError("Not found")
}

// imdsNetworkOf returns the network metadata and the ID of the VM whose
// NIC holds src; with vmID set, only if that is the VM.
func (s *Server) imdsNetworkOf(src netip.Addr, vmID string) (IMDSNetwork, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.nics {
		if n.vmID == "" || !n.holds(src) {
			continue
		}
		if vmID != "" && !strings.EqualFold(n.vmID, vmID) {
			return IMDSNetwork{}, "", false
		}
		return IMDSNetwork{Interface: []IMDSInterface{imdsInterface(n)}}, n.vmID, true
	}
	return IMDSNetwork{}, "", false
}

// holds reports whether one of the NIC's IP configurations has a. Requires s.mu.
func (n *nic) holds(a netip.Addr) bool {
	for _, c := range n.configs {
		if c.addr == a {
			return true
		}
	}
	return false
}

// imdsInterface renders n as IMDS does: the primary configuration first,
// then every secondary one whose write has succeeded (a configuration still
// being added is not on the VM yet). Requires s.mu.
func imdsInterface(n *nic) IMDSInterface {
	out := IMDSInterface{
		IPv6:       IMDSIPv6{IPAddress: []IMDSIPAddress{}},
		MacAddress: strings.ReplaceAll(n.mac, "-", ""),
	}
	addrs := []IMDSIPAddress{}
	if p := n.primaryConfig(); p != nil {
		addrs = append(addrs, IMDSIPAddress{PrivateIPAddress: p.addr.String()})
		if p.subnet != nil {
			pfx := p.subnet.prefix.Masked()
			out.IPv4.Subnet = []IMDSSubnet{{Address: pfx.Addr().String(), Prefix: strconv.Itoa(pfx.Bits())}}
		}
	}
	for _, c := range n.configs {
		if c.primary || !c.addr.IsValid() || c.state != stateSucceeded {
			continue
		}
		addrs = append(addrs, IMDSIPAddress{PrivateIPAddress: c.addr.String()})
	}
	out.IPv4.IPAddress = addrs
	if out.IPv4.Subnet == nil {
		out.IPv4.Subnet = []IMDSSubnet{}
	}
	return out
}
