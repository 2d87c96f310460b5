package armsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// getResource serves GET of an ASG, NSG, route table, public IP or load balancer.
func (s *Server) getResource(k *resKind) handlerFunc {
	return func(w http.ResponseWriter, _ *http.Request, p params) *armError {
		s.mu.Lock()
		res, aerr := s.lookupResourceLocked(k, p)
		if aerr != nil {
			s.mu.Unlock()
			return aerr
		}
		body, etag := k.render(s, res), res.base().etag
		s.mu.Unlock()
		w.Header().Set("ETag", etag)
		writeJSON(w, http.StatusOK, body)
		return nil
	}
}

func (s *Server) lookupResourceLocked(k *resKind, p params) (netResource, *armError) {
	if aerr := s.checkRGLocked(p.rg); aerr != nil {
		return nil, aerr
	}
	res := s.resourceLocked(k.typ, p.rg, p.name)
	if res == nil {
		return nil, errorf(http.StatusNotFound, CodeResourceNotFound,
			"The Resource 'Microsoft.Network/%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", k.typ, p.name, p.rg)
	}
	return res, nil
}

// putResource creates or replaces a resource. Unlike the NIC PUT it completes at once
// (201 or 200, provisioningState Succeeded), which the SDK's pollers accept as done.
func (s *Server) putResource(k *resKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) *armError {
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
		if err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidRequestContent, "read request body: %v", err)
		}
		var head struct {
			Location *string            `json:"location"`
			Tags     map[string]*string `json:"tags"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return errorf(http.StatusBadRequest, CodeInvalidRequestContent, "The request content was invalid and could not be deserialized: %v", err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if aerr := s.checkRGLocked(p.rg); aerr != nil {
			return aerr
		}
		old := s.resourceLocked(k.typ, p.rg, p.name)
		var oldEtag string
		if old != nil {
			oldEtag = old.base().etag
		}
		if aerr := checkEtag(r, old != nil, oldEtag, s.resID(p.rg, k.typ, p.name)); aerr != nil {
			return aerr
		}
		b := resBase{
			id: s.resID(s.rgs[strings.ToLower(p.rg)], k.typ, p.name), name: p.name, rg: s.rgs[strings.ToLower(p.rg)],
			location: s.location, etag: newEtag(), resourceGUID: newUUID(), tags: head.Tags,
		}
		if old != nil {
			ob := old.base()
			b.id, b.name, b.rg, b.location, b.resourceGUID = ob.id, ob.name, ob.rg, ob.location, ob.resourceGUID
		} else if head.Location != nil && *head.Location != "" {
			b.location = *head.Location
		}
		if head.Location != nil && !strings.EqualFold(strings.ReplaceAll(*head.Location, " ", ""), b.location) {
			return errorf(http.StatusBadRequest, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s'. A resource with the same name cannot be created in location '%s'.", b.id, b.location, *head.Location)
		}
		res, aerr := k.build(s, b, raw, old)
		if aerr != nil {
			return aerr
		}
		s.storeResourceLocked(k, old, res)
		w.Header().Set("ETag", res.base().etag)
		status := http.StatusOK
		if old == nil {
			status = http.StatusCreated
		}
		writeJSON(w, status, k.render(s, res))
		return nil
	}
}

// storeResourceLocked makes res current in place of old (nil on create). Requires s.mu.
func (s *Server) storeResourceLocked(k *resKind, old, res netResource) {
	if k.commit != nil {
		k.commit(s, old, res)
	}
	m := s.netres[strings.ToLower(k.typ)]
	if m == nil {
		m = map[string]netResource{}
		s.netres[strings.ToLower(k.typ)] = m
	}
	m[key(res.base().rg, res.base().name)] = res
	s.rgs[strings.ToLower(res.base().rg)] = res.base().rg
	s.bumpLocked()
}

// deleteResource deletes a resource synchronously (200; 204 when absent), refusing one
// still in use as ARM does.
func (s *Server) deleteResource(k *resKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p params) *armError {
		s.mu.Lock()
		defer s.mu.Unlock()
		if aerr := s.checkRGLocked(p.rg); aerr != nil {
			return aerr
		}
		res := s.resourceLocked(k.typ, p.rg, p.name)
		if res == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if aerr := checkEtag(r, true, res.base().etag, res.base().id); aerr != nil {
			return aerr
		}
		if k.inUse != nil {
			if aerr := k.inUse(s, res); aerr != nil {
				return aerr
			}
		}
		if k.release != nil {
			k.release(s, res)
		}
		delete(s.netres[strings.ToLower(k.typ)], key(p.rg, p.name))
		s.bumpLocked()
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// checkEtag applies If-Match / If-None-Match to a resource (exists tells whether it does).
func checkEtag(r *http.Request, exists bool, etag, id string) *armError {
	if im := r.Header.Get("If-Match"); im != "" {
		if !exists {
			return errorf(http.StatusPreconditionFailed, CodePreconditionFailed,
				"Precondition failed: the resource does not exist, so If-Match %s cannot match.", im)
		}
		if im != "*" && !etagMatches(im, etag) {
			return errorf(http.StatusPreconditionFailed, CodePreconditionFailed,
				"Precondition failed. Etag %s provided in if-match header does not match the current etag %s of resource %s.", im, etag, id)
		}
	}
	if inm := r.Header.Get("If-None-Match"); inm == "*" && exists {
		return errorf(http.StatusPreconditionFailed, CodePreconditionFailed,
			"Precondition failed: resource %s already exists and If-None-Match is *.", id)
	}
	return nil
}

// decodeBody unmarshals raw into v with Azure's message for malformed content.
func decodeBody(raw []byte, v any) *armError {
	if err := json.Unmarshal(raw, v); err != nil {
		return errorf(http.StatusBadRequest, CodeInvalidRequestContent, "The request content was invalid and could not be deserialized: %v", err)
	}
	return nil
}
