// Package server serves the agentapi contract to the CNI plugin and the
// read-only introspection endpoint over the agent's root-only unix socket,
// and metrics and the kubelet's probes over TCP.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/metrics"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// Allocator is what the server needs from the allocator (ipam.Allocator).
// Every error it returns is an *agentapi.Error.
type Allocator interface {
	Allocate(ctx context.Context, att agentapi.Attachment) (*agentapi.AllocateResponse, error)
	Release(key agentapi.AttachmentKey) (string, error)
	ReleaseAfter(key agentapi.AttachmentKey, undo func() error, done func(ip string, err error)) (string, error)
	Check(key agentapi.AttachmentKey) (store.Record, bool)
	Status() agentapi.StatusResponse
	ReleaseUnless(keep func(store.Record) bool, minAge time.Duration) ([]agentapi.AttachmentKey, error)
	Records() []store.Record
}

// Config configures the socket server.
type Config struct {
	// SocketPath is where to listen; agentapi.DefaultSocketPath if empty.
	SocketPath string
	// GCMinAge spares allocations younger than this from the runtime's CNI
	// GC, in case their ADD is still in flight.
	GCMinAge time.Duration
	// BodyReadTimeout bounds reading a request's body once its headers are
	// in (DefaultBodyReadTimeout if zero): a client that sends headers and
	// no body does not hold a connection open.
	BodyReadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection idle this long
	// (DefaultIdleTimeout if zero).
	IdleTimeout time.Duration
	// Metrics, when not nil, counts GC releases.
	Metrics *metrics.Metrics
	// Log receives request failures.
	Log logr.Logger
	// Veths, when not nil, deletes pods' host veths so that a release with
	// DeleteVeth answers before the veth is gone (gc.HostVeths); when nil
	// such a release is synchronous and the plugin deletes the veth.
	Veths VethDeleter
	// OnAllocated, when set, is called after each successful allocation
	// (the agent then reads the pod's attachment annotations); it must not
	// block.
	OnAllocated func()
}

// VethDeleter deletes pods' host veths (gc.HostVeths). Both methods treat a
// missing veth as done and leave a link of that name that is not a veth
// alone.
type VethDeleter interface {
	// Retire marks the veth as owed a delete, durably for as long as the
	// kernel keeps it, so a restarted agent finishes the delete.
	Retire(name string) (bool, error)
	// Delete removes the veth.
	Delete(name string) error
}

// Timeouts against slow or silent clients. There is deliberately no
// http.Server ReadTimeout or WriteTimeout on the socket: an allocation may
// wait up to --alloc-timeout for the pool to grow, and a whole-request read
// deadline firing during that wait would cancel it.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// DefaultBodyReadTimeout bounds reading a request's body.
	DefaultBodyReadTimeout = 10 * time.Second
	// DefaultIdleTimeout closes idle kept-alive connections.
	DefaultIdleTimeout = 60 * time.Second
)

// Server is the plugin-facing API.
type Server struct {
	cfg     Config
	alloc   Allocator
	serving atomic.Bool
}

// Serving reports whether Run is listening on the socket.
func (s *Server) Serving() bool { return s.serving.Load() }

// New returns a server for alloc.
func New(alloc Allocator, cfg Config) *Server {
	if cfg.SocketPath == "" {
		cfg.SocketPath = agentapi.DefaultSocketPath
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	return &Server{cfg: cfg, alloc: alloc}
}

// Listen creates the socket's directory (0700), removes a stale socket left
// by a previous run (but not one another agent still answers on) and
// listens with mode 0600. ctx bounds only the probe and the listen.
func Listen(ctx context.Context, path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict socket directory %s to 0700: %w", dir, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("remove stale socket %s: it is not a socket, refusing to delete it", path)
		}
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", path); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listen on %s: another agent is serving on it", path)
		}
		// A dial cut short by ctx proves nothing about the socket: keep it.
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("probe socket %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("restrict socket %s to 0600: %w", path, err)
	}
	return ln, nil
}

// Run listens on the socket and serves until ctx ends, then shuts down
// gracefully and removes the socket.
func (s *Server) Run(ctx context.Context) error {
	ln, err := Listen(ctx, s.cfg.SocketPath)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: ReadHeaderTimeout, IdleTimeout: s.cfg.IdleTimeout}
	s.serving.Store(true)
	return serve(ctx, ln, srv, func() {
		s.serving.Store(false)
		_ = os.Remove(s.cfg.SocketPath)
	})
}

// serve runs srv on ln until ctx ends; cleanup runs after shutdown.
func serve(ctx context.Context, ln net.Listener, srv *http.Server, cleanup func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		cleanup()
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// ctx is done by now: the graceful shutdown gets its own deadline.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	cleanup()
	if err != nil {
		return fmt.Errorf("shut down server on %s: %w", ln.Addr(), err)
	}
	return nil
}

// Handler returns the agentapi routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentapi.PathAllocate, s.allocate)
	mux.HandleFunc("POST "+agentapi.PathRelease, s.release)
	mux.HandleFunc("POST "+agentapi.PathCheck, s.check)
	mux.HandleFunc("GET "+agentapi.PathStatus, s.status)
	mux.HandleFunc("POST "+agentapi.PathGC, s.gc)
	// Introspection lists pod names, container IDs and netns paths: it is
	// served only here, on the root-only socket.
	mux.HandleFunc("GET "+PathAllocations, s.allocations)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// MaxBodyBytes bounds a request body; a larger one is refused (413), never
// truncated and parsed.
const MaxBodyBytes = 1 << 20

// maxMessage bounds how much of a decoding error is echoed back: a JSON
// error quotes the offending literal, which may be most of a 1 MiB body.
const maxMessage = 256

// statusError is an agentapi.Error answered with a specific HTTP status.
type statusError struct {
	status int
	err    *agentapi.Error
}

func (e *statusError) Error() string { return e.err.Error() }

// decode reads a JSON body of at most MaxBodyBytes into v within
// BodyReadTimeout; unknown fields are allowed so an older agent accepts a
// newer plugin. The read deadline is lifted once the body is in: the
// handler may then wait (an allocation up to --alloc-timeout), and the
// client bounds that wait itself.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	rc := http.NewResponseController(w)
	// Not every ResponseWriter supports deadlines (httptest's does not);
	// the server's own connections do.
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		// On error the deadline stays: the server then gives up on the
		// rest of the body at once and closes the connection, instead of
		// waiting for it without a deadline.
		_ = rc.SetReadDeadline(time.Time{})
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return &statusError{status: http.StatusRequestEntityTooLarge, err: &agentapi.Error{Code: agentapi.CodeInvalidFields,
			Message: fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)}}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &statusError{status: http.StatusRequestTimeout, err: &agentapi.Error{Code: agentapi.CodeInvalidFields,
			Message: fmt.Sprintf("request body not received within %s", s.cfg.BodyReadTimeout)}}
	case err != nil:
		return &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: truncate(fmt.Sprintf("read request body: %v", err))}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: truncate(fmt.Sprintf("decode %s request: %v", r.URL.Path, err))}
	}
	return nil
}

// truncate cuts a message to maxMessage bytes.
func truncate(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	return fmt.Sprintf("%s... (%d bytes)", msg[:maxMessage], len(msg))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with an agentapi.Error body and a matching HTTP status.
func writeError(w http.ResponseWriter, err error) {
	var se *statusError
	if errors.As(err, &se) {
		writeJSON(w, se.status, se.err)
		return
	}
	var apiErr *agentapi.Error
	if !errors.As(err, &apiErr) {
		apiErr = &agentapi.Error{Code: agentapi.CodeInternal, Message: err.Error()}
	}
	status := http.StatusInternalServerError
	switch apiErr.Code {
	case agentapi.CodeInvalidFields:
		status = http.StatusBadRequest
	case agentapi.CodeNotFound:
		status = http.StatusNotFound
	case agentapi.CodeTryAgainLater:
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, apiErr)
}
