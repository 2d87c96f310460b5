// Package server serves the agentapi contract to the CNI plugin over a unix
// socket, and the read-only introspection endpoint on localhost.
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
	// Metrics, when not nil, counts GC releases.
	Metrics *metrics.Metrics
	// Log receives request failures.
	Log logr.Logger
}

// Server is the plugin-facing API.
type Server struct {
	cfg   Config
	alloc Allocator
}

// New returns a server for alloc.
func New(alloc Allocator, cfg Config) *Server {
	if cfg.SocketPath == "" {
		cfg.SocketPath = agentapi.DefaultSocketPath
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
	return serve(ctx, ln, s.Handler(), func() { _ = os.Remove(s.cfg.SocketPath) })
}

// serve runs srv on ln until ctx ends; cleanup runs after shutdown.
func serve(ctx context.Context, ln net.Listener, h http.Handler, cleanup func()) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// decode reads a JSON body into v; unknown fields are allowed so an older
// agent accepts a newer plugin.
func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: fmt.Sprintf("read request body: %v", err)}
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &agentapi.Error{Code: agentapi.CodeInvalidFields, Message: fmt.Sprintf("decode %s request: %v", r.URL.Path, err)}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with an agentapi.Error body and a matching HTTP status.
func writeError(w http.ResponseWriter, err error) {
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
