package armsim

import (
	"io"
	"net/http"
	"net/netip"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// OpPutSubnet is a PUT of a subnet.
const OpPutSubnet Op = "PutSubnet"

// putSubnet updates an existing subnet's network security group and route table
// associations and its service endpoints, synchronously (200). Creating subnets and changing their prefix are
// outside armsim: the topology defines both.
func (s *Server) putSubnet(w http.ResponseWriter, r *http.Request, p params) *armError {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidRequestContent, "read request body: %v", err)
	}
	var body armnetwork.Subnet
	if aerr := decodeBody(raw, &body); aerr != nil {
		return aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, aerr := s.lookupVNetLocked(p)
	if aerr != nil {
		return aerr
	}
	var sn *subnet
	for _, x := range v.subnets {
		if strings.EqualFold(x.name, p.child) {
			sn = x
		}
	}
	if sn == nil {
		return errorf(http.StatusNotFound, CodeNotFound, "Resource %s/subnets/%s not found (armsim creates subnets only from its topology).", v.id, p.child)
	}
	nsgID, rtID, aerr := s.parseSubnetAssociations(sn, body.Properties)
	if aerr != nil {
		return aerr
	}
	var eps []serviceEndpoint
	if body.Properties != nil {
		if eps, aerr = s.parseServiceEndpoints(sn, body.Properties.ServiceEndpoints); aerr != nil {
			return aerr
		}
	}
	sn.nsg, sn.routeTable, sn.endpoints = nsgID, rtID, eps
	s.bumpLocked()
	writeJSON(w, http.StatusOK, renderSubnet(sn))
	return nil
}

// parseSubnetAssociations resolves the NSG and route table a subnet body references and
// refuses a changed prefix. Requires s.mu.
func (s *Server) parseSubnetAssociations(sn *subnet, pr *armnetwork.SubnetPropertiesFormat) (nsgID, rtID string, aerr *armError) {
	if pr == nil {
		return "", "", nil
	}
	if pr.AddressPrefix != nil {
		if pfx, err := netip.ParsePrefix(*pr.AddressPrefix); err != nil || pfx != sn.prefix {
			return "", "", errorf(http.StatusBadRequest, CodeInvalidRequestFormat,
				"armsim does not change the address prefix of subnet %s (%s requested, %s held).", sn.id, *pr.AddressPrefix, sn.prefix)
		}
	}
	if g := pr.NetworkSecurityGroup; g != nil {
		if g.ID == nil {
			return "", "", errRefNotFound("(none)", sn.id)
		}
		res, aerr := s.resolveLocked(*g.ID, typeNSG, s.location, sn.id)
		if aerr != nil {
			return "", "", aerr
		}
		nsgID = res.base().id
	}
	if t := pr.RouteTable; t != nil {
		if t.ID == nil {
			return "", "", errRefNotFound("(none)", sn.id)
		}
		res, aerr := s.resolveLocked(*t.ID, typeRouteTable, s.location, sn.id)
		if aerr != nil {
			return "", "", aerr
		}
		rtID = res.base().id
	}
	return nsgID, rtID, nil
}
