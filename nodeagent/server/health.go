package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// Probe paths of the health endpoint (kubelet liveness and readiness).
const (
	PathLive  = "/healthz"
	PathReady = "/readyz"
)

// probeTimeout bounds the health endpoint's own call to the socket.
const probeTimeout = 2 * time.Second

// HealthHandler serves the kubelet's probes. Both call the agent's own unix
// socket (GET /v1/status), so they fail when the server or the allocator
// behind it is wedged, not merely when the process is gone:
//   - PathLive answers 200 while the socket is not served yet (the agent is
//     still restoring its record or syncing caches; a restart would not
//     help), and afterwards only if the socket answers.
//   - PathReady answers 200 once the socket answers and the pool has been
//     synced from the API server at least once (synced).
func HealthHandler(s *Server, synced func() bool) http.Handler {
	client := agentapi.NewClient(s.cfg.SocketPath)
	probe := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		if _, err := client.Status(ctx); err != nil {
			return fmt.Errorf("the agent socket %s does not answer: %w", s.cfg.SocketPath, err)
		}
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathLive, func(w http.ResponseWriter, r *http.Request) {
		if !s.Serving() {
			probeAnswer(w, http.StatusOK, "starting: the agent socket is not served yet")
			return
		}
		if err := probe(r.Context()); err != nil {
			probeAnswer(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		probeAnswer(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !s.Serving():
			probeAnswer(w, http.StatusServiceUnavailable, "the agent socket is not served yet")
		case !synced():
			probeAnswer(w, http.StatusServiceUnavailable, "the node's pool has not been synced from the API server yet")
		default:
			if err := probe(r.Context()); err != nil {
				probeAnswer(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			probeAnswer(w, http.StatusOK, "ok")
		}
	})
	return mux
}

func probeAnswer(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}
