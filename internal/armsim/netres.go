package armsim

import (
	"fmt"
	"net/http"
	"strings"
)

// Resource types of Microsoft.Network beyond NICs and VNets, as they appear in resource IDs.
const (
	typeASG        = "applicationSecurityGroups"
	typeNSG        = "networkSecurityGroups"
	typeRouteTable = "routeTables"
	typePublicIP   = "publicIPAddresses"
	typeLB         = "loadBalancers"
)

// resBase is what every top-level network resource has. Guarded by Server.mu.
type resBase struct {
	id, name, rg string
	location     string
	etag         string
	resourceGUID string
	tags         map[string]*string
}

func (b *resBase) base() *resBase { return b }

// netResource is a stored ASG, NSG, route table, public IP or load balancer.
type netResource interface{ base() *resBase }

// resKind describes one resource type: how to build it from a request body (validating
// every reference), what to do when it replaces old (nil on create) or is deleted, and how
// to render it. All functions run with Server.mu held.
type resKind struct {
	typ                 string // as in resource IDs, e.g. "publicIPAddresses"
	getOp, putOp, delOp Op
	// build parses raw into a new resource with b's identity; old is the current one or nil.
	build func(s *Server, b resBase, raw []byte, old netResource) (netResource, *armError)
	// commit makes r current (old is replaced, nil on create): ledgers, owners.
	commit func(s *Server, old, r netResource)
	// inUse refuses a delete while something references r.
	inUse func(s *Server, r netResource) *armError
	// release undoes commit's bookkeeping for a deleted r.
	release func(s *Server, r netResource)
	render  func(s *Server, r netResource) any
}

// kinds lists the resource types served generically, keyed by lower-case type.
var kinds = map[string]*resKind{}

func registerKind(k *resKind) { kinds[strings.ToLower(k.typ)] = k }

// resID builds the ID of a top-level network resource of this subscription.
func (s *Server) resID(rg, typ, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/%s/%s", s.sub, rg, typ, name)
}

// resourceLocked returns the stored resource of kind typ, or nil. Requires s.mu.
func (s *Server) resourceLocked(typ, rg, name string) netResource {
	return s.netres[strings.ToLower(typ)][key(rg, name)]
}

// ref is a parsed resource ID of this subscription: a top-level network resource and,
// for child references (a load balancer's backend pool), the child's type and name.
type ref struct {
	rg, typ, name, childType, child string
}

// parseRef parses a Microsoft.Network resource ID of this subscription (case-insensitive).
func (s *Server) parseRef(id string) (ref, bool) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if (len(p) != 8 && len(p) != 10) || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[1], s.sub) ||
		!strings.EqualFold(p[2], "resourceGroups") || !strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5], "Microsoft.Network") {
		return ref{}, false
	}
	r := ref{rg: p[3], typ: p[6], name: p[7]}
	if len(p) == 10 {
		r.childType, r.child = p[8], p[9]
	}
	return r, true
}

// errRefNotFound is Azure's answer for a reference to a missing resource or one in
// another region.
func errRefNotFound(target, by string) *armError {
	return errorf(http.StatusBadRequest, CodeInvalidResourceReference,
		"Resource %s referenced by resource %s was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", target, by)
}

// resolveLocked finds the top-level resource of type typ that id names, refusing IDs of
// another type, missing resources and resources outside location, as ARM does. by is
// the referencing resource's ID, for the message. Requires s.mu.
func (s *Server) resolveLocked(id, typ, location, by string) (netResource, *armError) {
	r, ok := s.parseRef(id)
	if !ok || r.childType != "" || !strings.EqualFold(r.typ, typ) {
		return nil, errRefNotFound(id, by)
	}
	res := s.resourceLocked(typ, r.rg, r.name)
	if res == nil || !strings.EqualFold(res.base().location, location) {
		return nil, errRefNotFound(id, by)
	}
	return res, nil
}

// sameIDs reports whether a and b hold the same IDs in any order (case-insensitive).
func sameIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	set := map[string]int{}
	for _, x := range a {
		set[strings.ToLower(x)]++
	}
	for _, x := range b {
		set[strings.ToLower(x)]--
	}
	for _, n := range set {
		if n != 0 {
			return false
		}
	}
	return true
}
