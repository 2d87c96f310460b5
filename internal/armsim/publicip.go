package armsim

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Operations on public IP addresses.
const (
	OpGetPublicIP    Op = "GetPublicIPAddress"
	OpPutPublicIP    Op = "PutPublicIPAddress"
	OpDeletePublicIP Op = "DeletePublicIPAddress"
)

// DefaultPublicIPRange is where armsim allocates public IP addresses when the topology
// names no range: a documentation range (RFC 5737), never routed anywhere real.
const DefaultPublicIPRange = "198.51.100.0/24"

// publicIP is a public IP address. owner is the ID of the IP configuration (of a NIC or
// of a load balancer's frontend) it is associated with, "" when free. Guarded by Server.mu.
type publicIP struct {
	resBase
	addr  netip.Addr
	sku   string
	owner string
}

func init() {
	registerKind(&resKind{
		typ: typePublicIP, getOp: OpGetPublicIP, putOp: OpPutPublicIP, delOp: OpDeletePublicIP,
		build: buildPublicIP,
		commit: func(s *Server, old, r netResource) {
			p := r.(*publicIP)
			s.pipUsed[p.addr] = p.id
		},
		inUse: func(s *Server, r netResource) *armError {
			p := r.(*publicIP)
			if p.owner != "" {
				return errorf(http.StatusBadRequest, CodePublicIPAddressCannotBeDeleted,
					"Public IP address %s can not be deleted since it is still allocated to resource %s. In order to delete the public IP, disassociate/detach the Public IP address from the resource.", p.id, p.owner)
			}
			return nil
		},
		release: func(s *Server, r netResource) { delete(s.pipUsed, r.(*publicIP).addr) },
		render:  func(s *Server, r netResource) any { return renderPublicIP(r.(*publicIP)) },
	})
}

func buildPublicIP(s *Server, b resBase, raw []byte, old netResource) (netResource, *armError) {
	var body armnetwork.PublicIPAddress
	if aerr := decodeBody(raw, &body); aerr != nil {
		return nil, aerr
	}
	p := &publicIP{resBase: b, sku: string(armnetwork.PublicIPAddressSKUNameStandard)}
	if body.SKU != nil && body.SKU.Name != nil {
		p.sku = string(*body.SKU.Name)
	}
	if pr := body.Properties; pr != nil {
		if pr.PublicIPAddressVersion != nil && *pr.PublicIPAddressVersion != armnetwork.IPVersionIPv4 {
			return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "armsim supports only IPv4 public IP addresses (%s).", p.id)
		}
		if pr.PublicIPAllocationMethod != nil && strings.EqualFold(p.sku, "Standard") &&
			!strings.EqualFold(string(*pr.PublicIPAllocationMethod), string(armnetwork.IPAllocationMethodStatic)) {
			return nil, errorf(http.StatusBadRequest, CodeStandardSkuPublicIPMustBeStatic,
				"Standard sku publicIp %s must have AllocationMethod set to Static.", p.id)
		}
	}
	if old != nil {
		o := old.(*publicIP)
		p.addr, p.owner = o.addr, o.owner
		return p, nil
	}
	a, ok := s.freePublicIPLocked()
	if !ok {
		return nil, errorf(http.StatusBadRequest, CodePublicIPCountLimitReached,
			"Cannot create more than %d public IP addresses for this subscription in this region.", len(s.pipUsed))
	}
	p.addr = a
	return p, nil
}

// freePublicIPLocked returns the lowest unused address of the public range (neither its
// first nor its last address). Requires s.mu.
func (s *Server) freePublicIPLocked() (netip.Addr, bool) {
	last := lastAddr(s.pipRange)
	for a := s.pipRange.Masked().Addr().Next(); a.IsValid() && a.Less(last); a = a.Next() {
		if _, used := s.pipUsed[a]; !used {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func renderPublicIP(p *publicIP) armnetwork.PublicIPAddress {
	props := &armnetwork.PublicIPAddressPropertiesFormat{
		IPAddress:                to.Ptr(p.addr.String()),
		PublicIPAddressVersion:   to.Ptr(armnetwork.IPVersionIPv4),
		PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic),
		ProvisioningState:        to.Ptr(armnetwork.ProvisioningStateSucceeded),
		ResourceGUID:             to.Ptr(p.resourceGUID),
		IdleTimeoutInMinutes:     to.Ptr[int32](4),
	}
	if p.owner != "" {
		props.IPConfiguration = &armnetwork.IPConfiguration{ID: to.Ptr(p.owner)}
	}
	return armnetwork.PublicIPAddress{
		ID: to.Ptr(p.id), Name: to.Ptr(p.name), Type: to.Ptr("Microsoft.Network/publicIPAddresses"),
		Location: to.Ptr(p.location), Etag: to.Ptr(p.etag), Tags: p.tags,
		SKU:        &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUName(p.sku)), Tier: to.Ptr(armnetwork.PublicIPAddressSKUTierRegional)},
		Properties: props,
	}
}

// claimPublicIPLocked checks that the public IP id may be associated with the IP
// configuration cfgID, also given the other claims of the same request (claimed: public
// IP ID -> configuration), and returns it. mayTakeFrom reports owners the same request
// releases. Requires s.mu.
func (s *Server) claimPublicIPLocked(id, cfgID, location string, claimed map[string]string, mayTakeFrom func(owner string) bool) (*publicIP, *armError) {
	res, aerr := s.resolveLocked(id, typePublicIP, location, cfgID)
	if aerr != nil {
		return nil, aerr
	}
	p := res.(*publicIP)
	if other, dup := claimed[strings.ToLower(p.id)]; dup && !strings.EqualFold(other, cfgID) {
		return nil, errPublicIPInUse(cfgID, p.id, other)
	}
	if p.owner != "" && !strings.EqualFold(p.owner, cfgID) && !mayTakeFrom(p.owner) {
		return nil, errPublicIPInUse(cfgID, p.id, p.owner)
	}
	claimed[strings.ToLower(p.id)] = cfgID
	return p, nil
}

func errPublicIPInUse(cfgID, pipID, owner string) *armError {
	return errorf(http.StatusBadRequest, CodePublicIPAddressInUse,
		"Resource %s is referencing public IP address %s that is already allocated to resource %s.", cfgID, pipID, owner)
}
