package armsim

import (
	"net/http"
	"strings"
)

func (s *Server) getVNet(w http.ResponseWriter, _ *http.Request, p params) *armError {
	s.mu.Lock()
	v, aerr := s.lookupVNetLocked(p)
	if aerr != nil {
		s.mu.Unlock()
		return aerr
	}
	body := renderVNet(v, s.location)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (s *Server) getSubnet(w http.ResponseWriter, _ *http.Request, p params) *armError {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, aerr := s.lookupVNetLocked(p)
	if aerr != nil {
		return aerr
	}
	for _, sn := range v.subnets {
		if strings.EqualFold(sn.name, p.child) {
			writeJSON(w, http.StatusOK, renderSubnet(sn))
			return nil
		}
	}
	return errorf(http.StatusNotFound, CodeNotFound, "Resource %s/subnets/%s not found.", v.id, p.child)
}

// lookupVNetLocked finds the VNet named by p. Requires s.mu.
func (s *Server) lookupVNetLocked(p params) (*vnet, *armError) {
	if aerr := s.checkRGLocked(p.rg); aerr != nil {
		return nil, aerr
	}
	v := s.vnets[key(p.rg, p.name)]
	if v == nil {
		return nil, errorf(http.StatusNotFound, CodeResourceNotFound,
			"The Resource 'Microsoft.Network/virtualNetworks/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", p.name, p.rg)
	}
	return v, nil
}

// checkRGLocked answers 404 ResourceGroupNotFound for resource groups the topology lacks.
func (s *Server) checkRGLocked(rg string) *armError {
	if _, ok := s.rgs[strings.ToLower(rg)]; !ok {
		return errorf(http.StatusNotFound, CodeResourceGroupNotFound, "Resource group '%s' could not be found.", rg)
	}
	return nil
}
