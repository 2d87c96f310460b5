// Package fakeagent is an in-memory nicpool agent speaking the real
// agentapi wire protocol on a unix socket, for the CNI plugin's tests.
package fakeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Agent hands out IPs from a fixed list. It is safe for concurrent use.
type Agent struct {
	mu       sync.Mutex
	free     []string
	held     map[agentapi.AttachmentKey]agentapi.CheckResponse
	ready    bool
	reason   string
	allocErr *agentapi.Error
	delay    time.Duration

	ln  net.Listener
	srv *http.Server
}

// Start serves on socket with ips as the pool, ready; ctx bounds only the
// listen, Close stops the agent.
func Start(ctx context.Context, socket string, ips []string) (*Agent, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	a := &Agent{
		free:  append([]string(nil), ips...),
		held:  map[agentapi.AttachmentKey]agentapi.CheckResponse{},
		ready: true,
		ln:    ln,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentapi.PathAllocate, a.allocate)
	mux.HandleFunc("POST "+agentapi.PathRelease, a.release)
	mux.HandleFunc("POST "+agentapi.PathCheck, a.check)
	mux.HandleFunc("GET "+agentapi.PathStatus, a.status)
	mux.HandleFunc("POST "+agentapi.PathGC, a.gc)
	a.srv = &http.Server{Handler: mux}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

// Close stops serving; the socket file is removed.
func (a *Agent) Close() error {
	err := a.srv.Close()
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("close fake agent: %w", err)
}

// Held returns a copy of the attachment to IP map.
func (a *Agent) Held() map[agentapi.AttachmentKey]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[agentapi.AttachmentKey]string, len(a.held))
	for k, v := range a.held {
		out[k] = v.IP
	}
	return out
}

// Record returns what the agent holds for key.
func (a *Agent) Record(key agentapi.AttachmentKey) (agentapi.CheckResponse, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.held[key]
	return r, ok
}

// SetReady sets what Status reports.
func (a *Agent) SetReady(ready bool, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready, a.reason = ready, reason
}

// FailAllocate makes every Allocate answer e until called with nil.
func (a *Agent) FailAllocate(e *agentapi.Error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.allocErr = e
}

// DelayAllocate makes Allocate wait d, holding the agent's lock, before it
// allocates: a slow agent that still allocates after the caller gave up.
func (a *Agent) DelayAllocate(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.delay = d
}

func (a *Agent) allocate(w http.ResponseWriter, r *http.Request) {
	var req agentapi.AllocateRequest
	if !decode(w, r, &req) {
		return
	}
	req.AttachmentKey = req.Normalized() // as the agent's store does
	a.mu.Lock()
	defer a.mu.Unlock()
	time.Sleep(a.delay)
	if a.allocErr != nil {
		writeError(w, http.StatusServiceUnavailable, a.allocErr)
		return
	}
	if rec, ok := a.held[req.AttachmentKey]; ok {
		writeJSON(w, http.StatusOK, agentapi.AllocateResponse{IP: rec.IP})
		return
	}
	if len(a.free) == 0 {
		writeError(w, http.StatusServiceUnavailable, &agentapi.Error{Code: agentapi.CodeTryAgainLater, Message: "no free ip"})
		return
	}
	ip := a.free[0]
	a.free = a.free[1:]
	a.held[req.AttachmentKey] = agentapi.CheckResponse{Attachment: req.Attachment, IP: ip}
	writeJSON(w, http.StatusOK, agentapi.AllocateResponse{IP: ip})
}

func (a *Agent) release(w http.ResponseWriter, r *http.Request) {
	var req agentapi.ReleaseRequest
	if !decode(w, r, &req) {
		return
	}
	req.AttachmentKey = req.Normalized() // as the agent's store does
	a.mu.Lock()
	defer a.mu.Unlock()
	writeJSON(w, http.StatusOK, agentapi.ReleaseResponse{IP: a.releaseLocked(req.AttachmentKey)})
}

func (a *Agent) releaseLocked(key agentapi.AttachmentKey) string {
	rec, ok := a.held[key]
	if !ok {
		return ""
	}
	delete(a.held, key)
	a.free = append(a.free, rec.IP)
	return rec.IP
}

func (a *Agent) check(w http.ResponseWriter, r *http.Request) {
	var req agentapi.CheckRequest
	if !decode(w, r, &req) {
		return
	}
	req.AttachmentKey = req.Normalized() // as the agent's store does
	a.mu.Lock()
	defer a.mu.Unlock()
	rec, ok := a.held[req.AttachmentKey]
	if !ok {
		writeError(w, http.StatusNotFound, &agentapi.Error{Code: agentapi.CodeNotFound, Message: "no such attachment"})
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (a *Agent) status(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	capacity := len(a.free) + len(a.held)
	writeJSON(w, http.StatusOK, agentapi.StatusResponse{
		Ready: a.ready, Reason: a.reason, Capacity: capacity, Allocated: len(a.held), Free: len(a.free),
	})
}

func (a *Agent) gc(w http.ResponseWriter, r *http.Request) {
	var req agentapi.GCRequest
	if !decode(w, r, &req) {
		return
	}
	_, keep, err := req.Collects()
	var apiErr *agentapi.Error
	if errors.As(err, &apiErr) {
		writeError(w, http.StatusBadRequest, apiErr)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var resp agentapi.GCResponse
	for k := range a.held {
		if !keep(k) {
			a.releaseLocked(k)
			resp.Released = append(resp.Released, k)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: err.Error()})
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, status int, e *agentapi.Error) {
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
