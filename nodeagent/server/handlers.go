package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/gc"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/metrics"
	"github.com/nicpool/nicpool/nodeagent/store"
	"github.com/nicpool/nicpool/nodeagent/vethname"
)

func (s *Server) allocate(w http.ResponseWriter, r *http.Request) {
	var req agentapi.AllocateRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	if req.WaitMillis < 0 {
		writeError(w, &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: fmt.Sprintf("waitMillis %d is negative", req.WaitMillis)})
		return
	}
	// Beyond a day the agent's own --alloc-timeout is sooner anyway (and
	// the conversion cannot overflow).
	if req.WaitMillis > 0 && req.WaitMillis < (24*time.Hour).Milliseconds() {
		ctx = ipam.WithMaxWait(ctx, time.Duration(req.WaitMillis)*time.Millisecond)
	}
	resp, err := s.alloc.Allocate(ctx, req.Attachment)
	if err != nil {
		// The request may be invalid: log bounded excerpts, not 1 MiB fields.
		s.cfg.Log.Info("Allocation failed", "containerID", truncate(req.ContainerID), "ifName", truncate(req.IfName),
			"pod", truncate(req.PodNamespace+"/"+req.PodName), "error", truncate(err.Error()))
		writeError(w, err)
		return
	}
	if s.cfg.OnAllocated != nil {
		s.cfg.OnAllocated()
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	var req agentapi.ReleaseRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.DeleteVeth && s.cfg.Veths != nil {
		s.releaseAfterVeth(w, req.AttachmentKey)
		return
	}
	ip, err := s.alloc.Release(req.AttachmentKey)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, agentapi.ReleaseResponse{IP: ip})
}

// releaseAfterVeth answers a DEL before its host veth is deleted: the veth
// is marked retired (so an agent killed before the delete finishes it at
// its next start), then deleted in the background, and only then is the IP
// released (ipam.Allocator.ReleaseAfter). The runtime's DEL thus waits for
// neither the kernel's veth delete (its RCU grace periods) nor the store's
// fsync, and no IP is handed out while a route to its old pod exists.
func (s *Server) releaseAfterVeth(w http.ResponseWriter, key agentapi.AttachmentKey) {
	key = key.Normalized()
	if err := ipam.ValidateKey(key); err != nil {
		writeError(w, err)
		return
	}
	name := vethname.VethName(key.ContainerID, key.IfName)
	if _, err := s.cfg.Veths.Retire(name); err != nil {
		writeError(w, &agentapi.Error{Code: agentapi.CodeInternal, Message: fmt.Sprintf("release container %s interface %s: %v", key.ContainerID, key.IfName, err)})
		return
	}
	log := s.cfg.Log
	ip, err := s.alloc.ReleaseAfter(key, func() error { return s.cfg.Veths.Delete(name) }, func(ip string, err error) {
		if err != nil {
			log.Error(err, "Failed to finish a DEL; the IP stays held until the agent's next start deletes the retired veth", "veth", name)
		}
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, agentapi.ReleaseResponse{IP: ip, VethDeleting: true})
}

func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	var req agentapi.CheckRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := ipam.ValidateKey(req.AttachmentKey); err != nil {
		writeError(w, err)
		return
	}
	rec, ok := s.alloc.Check(req.AttachmentKey)
	if !ok {
		writeError(w, &agentapi.Error{Code: agentapi.CodeNotFound, Message: fmt.Sprintf("no IP recorded for container %s interface %s", req.ContainerID, req.IfName)})
		return
	}
	writeJSON(w, http.StatusOK, agentapi.CheckResponse{Attachment: rec.Attachment, IP: rec.IP})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.alloc.Status())
}

func (s *Server) gc(w http.ResponseWriter, r *http.Request) {
	var req agentapi.GCRequest
	if err := s.decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	network, keep, err := req.Collects()
	if err == nil {
		err = ipam.ValidateNetwork(network)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	released, err := s.alloc.ReleaseUnless(func(rec store.Record) bool {
		// A record rebuilt from a host route (--reset-state) has no
		// container ID the runtime could list, and its pod may well be
		// running: the agent's own GC releases it once its veth is gone.
		return keep(rec.AttachmentKey) || strings.HasPrefix(rec.ContainerID, gc.RecoveredPrefix)
	}, s.cfg.GCMinAge)
	s.cfg.Metrics.GCReleased(metrics.ReasonCNIGC, len(released))
	if len(released) > 0 {
		s.cfg.Log.Info("Released allocations the runtime no longer knows", "count", len(released))
	}
	if err != nil {
		writeError(w, &agentapi.Error{Code: agentapi.CodeInternal, Message: fmt.Sprintf("garbage-collect allocations: %v", err)})
		return
	}
	writeJSON(w, http.StatusOK, agentapi.GCResponse{Released: released})
}
