package armsim

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// ListPageSize is how many NICs one list page holds before a nextLink.
const ListPageSize = 100

func (s *Server) getNIC(w http.ResponseWriter, _ *http.Request, p params) *armError {
	s.mu.Lock()
	n, aerr := s.lookupNICLocked(p)
	if aerr != nil {
		s.mu.Unlock()
		return aerr
	}
	body, etag := renderNIC(n), n.etag
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	writeJSON(w, http.StatusOK, body)
	return nil
}

// lookupNICLocked finds the NIC named by p. Requires s.mu.
func (s *Server) lookupNICLocked(p params) (*nic, *armError) {
	if aerr := s.checkRGLocked(p.rg); aerr != nil {
		return nil, aerr
	}
	n := s.nics[key(p.rg, p.name)]
	if n == nil {
		return nil, errorf(http.StatusNotFound, CodeResourceNotFound,
			"The Resource 'Microsoft.Network/networkInterfaces/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", p.name, p.rg)
	}
	return n, nil
}

// listNICs serves both the resource-group and the subscription-wide list, paged.
func (s *Server) listNICs(w http.ResponseWriter, r *http.Request, p params) *armError {
	skip := 0
	if tok := r.URL.Query().Get("$skiptoken"); tok != "" {
		v, err := strconv.Atoi(tok)
		if err != nil || v < 0 {
			return errorf(http.StatusBadRequest, CodeInvalidRequestFormat, "invalid $skiptoken %q", tok)
		}
		skip = v
	}
	s.mu.Lock()
	if p.rg != "" {
		if aerr := s.checkRGLocked(p.rg); aerr != nil {
			s.mu.Unlock()
			return aerr
		}
	}
	var all []*nic
	for _, n := range s.nics {
		if p.rg == "" || strings.EqualFold(n.rg, p.rg) {
			all = append(all, n)
		}
	}
	sort.Slice(all, func(i, j int) bool { return strings.ToLower(all[i].id) < strings.ToLower(all[j].id) })
	page := armnetwork.InterfaceListResult{Value: []*armnetwork.Interface{}}
	for i := skip; i < len(all) && i < skip+ListPageSize; i++ {
		nicBody := renderNIC(all[i])
		page.Value = append(page.Value, &nicBody)
	}
	s.mu.Unlock()
	if skip+ListPageSize < len(all) {
		q := url.Values{}
		q.Set("api-version", r.URL.Query().Get("api-version"))
		q.Set("$skiptoken", strconv.Itoa(skip+ListPageSize))
		next := baseURL(r) + r.URL.Path + "?" + q.Encode()
		page.NextLink = &next
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// deleteNIC removes a NIC and frees its addresses synchronously (200; 204 when absent).
// Unlike Azure it does not refuse a NIC attached to a VM, so tests can simulate a NIC
// that disappears underneath the operator.
func (s *Server) deleteNIC(w http.ResponseWriter, r *http.Request, p params) *armError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if aerr := s.checkRGLocked(p.rg); aerr != nil {
		return aerr
	}
	k := key(p.rg, p.name)
	n := s.nics[k]
	if n == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if aerr := checkPreconditions(r, n); aerr != nil {
		return aerr
	}
	if n.op != nil {
		return errorf(http.StatusConflict, CodeAnotherOperationInProgress,
			"Operation DeleteNetworkInterface on resource %s cannot be performed because another operation (PutNetworkInterface %s) is in progress.", n.id, n.op.id)
	}
	s.detachLocked(n)
	for _, c := range n.configs {
		releaseAddr(n, c)
	}
	delete(s.nics, k)
	s.bumpLocked()
	w.WriteHeader(http.StatusOK)
	return nil
}

// releaseAddr frees c's address if c still holds it.
func releaseAddr(n *nic, c *ipConfig) {
	v := c.subnet.vnet
	if v.used[c.addr] == n.configID(c.name) {
		delete(v.used, c.addr)
	}
}

// checkPreconditions applies If-Match / If-None-Match against n (nil when absent).
func checkPreconditions(r *http.Request, n *nic) *armError {
	if im := r.Header.Get("If-Match"); im != "" {
		if n == nil {
			return errorf(http.StatusPreconditionFailed, CodePreconditionFailed,
				"Precondition failed: the resource does not exist, so If-Match %s cannot match.", im)
		}
		if im != "*" && !etagMatches(im, n.etag) {
			return errorf(http.StatusPreconditionFailed, CodePreconditionFailed,
				"Precondition failed. Etag %s provided in if-match header does not match the current etag %s of resource %s.", im, n.etag, n.id)
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm == "*" && n != nil {
		return errorf(http.StatusPreconditionFailed, CodePreconditionFailed,
			"Precondition failed: resource %s already exists and If-None-Match is *.", n.id)
	}
	return nil
}

// etagMatches compares etags, tolerating a missing weak prefix or quotes on the client side.
func etagMatches(given, current string) bool {
	norm := func(e string) string { return strings.Trim(strings.TrimPrefix(strings.TrimSpace(e), "W/"), `"`) }
	for _, g := range strings.Split(given, ",") {
		if norm(g) == norm(current) {
			return true
		}
	}
	return false
}
