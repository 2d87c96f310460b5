package armsim

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// Operations on route tables.
const (
	OpGetRouteTable    Op = "GetRouteTable"
	OpPutRouteTable    Op = "PutRouteTable"
	OpDeleteRouteTable Op = "DeleteRouteTable"
)

// Next hop types of user-defined routes.
const (
	NextHopVirtualAppliance = "VirtualAppliance"
	NextHopNone             = "None"
	NextHopInternet         = "Internet"
	NextHopVnetLocal        = "VnetLocal"
	NextHopVNetGateway      = "VirtualNetworkGateway"
)

// UserRoute is one user-defined route of a route table.
type UserRoute struct {
	Name          string
	AddressPrefix netip.Prefix
	NextHopType   string
	NextHopIP     netip.Addr // VirtualAppliance only
}

// routeTable is a route table. Guarded by Server.mu.
type routeTable struct {
	resBase
	routes []UserRoute
}

func init() {
	registerKind(&resKind{
		typ: typeRouteTable, getOp: OpGetRouteTable, putOp: OpPutRouteTable, delOp: OpDeleteRouteTable,
		build: buildRouteTable,
		inUse: func(s *Server, r netResource) *armError {
			t := r.(*routeTable)
			for _, v := range s.vnets {
				for _, sn := range v.subnets {
					if strings.EqualFold(sn.routeTable, t.id) {
						return errorf(http.StatusBadRequest, CodeInUseRouteTableCannotBeDeleted,
							"Route table %s is in use and cannot be deleted. In order to delete the route table, remove its association with subnet %s.", t.id, sn.id)
					}
				}
			}
			return nil
		},
		render: func(s *Server, r netResource) any { return s.renderRouteTable(r.(*routeTable)) },
	})
}

func buildRouteTable(s *Server, b resBase, raw []byte, _ netResource) (netResource, *armError) {
	var body armnetwork.RouteTable
	if aerr := decodeBody(raw, &body); aerr != nil {
		return nil, aerr
	}
	t := &routeTable{resBase: b}
	if body.Properties == nil {
		return t, nil
	}
	names := map[string]bool{}
	for _, r := range body.Properties.Routes {
		if r == nil || r.Name == nil || *r.Name == "" || r.Properties == nil {
			return nil, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Every route of %s needs a name and properties.", t.id)
		}
		id := t.id + "/routes/" + *r.Name
		if names[strings.ToLower(*r.Name)] {
			return nil, errorf(http.StatusBadRequest, "DuplicateResourceName", "Route table %s has two routes named %s.", t.id, *r.Name)
		}
		names[strings.ToLower(*r.Name)] = true
		ur, aerr := parseRoute(id, *r.Name, r.Properties)
		if aerr != nil {
			return nil, aerr
		}
		t.routes = append(t.routes, ur)
	}
	return t, nil
}

func parseRoute(id, name string, p *armnetwork.RoutePropertiesFormat) (UserRoute, *armError) {
	ur := UserRoute{Name: name}
	if p.AddressPrefix == nil {
		return ur, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Route %s has no addressPrefix.", id)
	}
	pfx, err := netip.ParsePrefix(*p.AddressPrefix)
	if err != nil || !pfx.Addr().Is4() || pfx.Masked() != pfx {
		return ur, errorf(http.StatusBadRequest, CodeInvalidRouteAddressPrefix, "Route %s has an invalid address prefix %s.", id, *p.AddressPrefix)
	}
	ur.AddressPrefix = pfx
	ur.NextHopType = enumValue(p.NextHopType, NextHopVirtualAppliance, NextHopNone, NextHopInternet, NextHopVnetLocal, NextHopVNetGateway)
	if ur.NextHopType == "" {
		return ur, errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "Route %s has an invalid nextHopType %v.", id, deref(p.NextHopType))
	}
	hasIP := p.NextHopIPAddress != nil && *p.NextHopIPAddress != ""
	switch {
	case ur.NextHopType == NextHopVirtualAppliance && !hasIP:
		return ur, errorf(http.StatusBadRequest, CodeInvalidNextHopIP,
			"Route %s has next hop type VirtualAppliance but no next hop IP address.", id)
	case ur.NextHopType != NextHopVirtualAppliance && hasIP:
		return ur, errorf(http.StatusBadRequest, CodeInvalidNextHopIP,
			"Route %s has a next hop IP address %s, which is allowed only with next hop type VirtualAppliance.", id, *p.NextHopIPAddress)
	case hasIP:
		a, err := netip.ParseAddr(*p.NextHopIPAddress)
		if err != nil || !a.Is4() {
			return ur, errorf(http.StatusBadRequest, CodeInvalidNextHopIP, "Route %s has an invalid next hop IP address %s.", id, *p.NextHopIPAddress)
		}
		ur.NextHopIP = a
	}
	return ur, nil
}

func (s *Server) renderRouteTable(t *routeTable) armnetwork.RouteTable {
	props := &armnetwork.RouteTablePropertiesFormat{
		ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded), ResourceGUID: to.Ptr(t.resourceGUID),
		DisableBgpRoutePropagation: to.Ptr(false), Routes: []*armnetwork.Route{},
	}
	for _, r := range t.routes {
		rp := &armnetwork.RoutePropertiesFormat{
			AddressPrefix: to.Ptr(r.AddressPrefix.String()), NextHopType: to.Ptr(armnetwork.RouteNextHopType(r.NextHopType)),
			ProvisioningState: to.Ptr(armnetwork.ProvisioningStateSucceeded), HasBgpOverride: to.Ptr(false),
		}
		if r.NextHopIP.IsValid() {
			rp.NextHopIPAddress = to.Ptr(r.NextHopIP.String())
		}
		props.Routes = append(props.Routes, &armnetwork.Route{
			ID: to.Ptr(t.id + "/routes/" + r.Name), Name: to.Ptr(r.Name), Type: to.Ptr("Microsoft.Network/routeTables/routes"),
			Etag: to.Ptr(t.etag), Properties: rp,
		})
	}
	for _, v := range s.vnets {
		for _, sn := range v.subnets {
			if strings.EqualFold(sn.routeTable, t.id) {
				props.Subnets = append(props.Subnets, &armnetwork.Subnet{ID: to.Ptr(sn.id)})
			}
		}
	}
	return armnetwork.RouteTable{
		ID: to.Ptr(t.id), Name: to.Ptr(t.name), Type: to.Ptr("Microsoft.Network/routeTables"),
		Location: to.Ptr(t.location), Etag: to.Ptr(t.etag), Tags: t.tags, Properties: props,
	}
}
