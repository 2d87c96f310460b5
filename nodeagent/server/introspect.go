package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nicpool/nicpool/nodeagent/store"
)

// PathAllocations is the introspection route listing who holds which IP,
// served on the agent's unix socket (mode 0600, directory 0700: root only).
const PathAllocations = "/v1/allocations"

// AllocationsResponse is the body of GET /v1/allocations.
type AllocationsResponse struct {
	// Allocations are the records, sorted by IP.
	Allocations []store.Record `json:"allocations"`
}

// allocations serves GET /v1/allocations (read-only) on the socket.
func (s *Server) allocations(w http.ResponseWriter, _ *http.Request) {
	recs := s.alloc.Records()
	if recs == nil {
		recs = []store.Record{}
	}
	writeJSON(w, http.StatusOK, AllocationsResponse{Allocations: recs})
}

// MetricsHandler serves the registry's metrics on /metrics.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

// ServeTCP serves h on addr until ctx ends; an empty addr disables it.
func ServeTCP(ctx context.Context, addr string, h http.Handler) error {
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	// Metrics and probes answer at once: a whole-request deadline is safe.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: DefaultIdleTimeout}
	return serve(ctx, ln, srv, func() {})
}
