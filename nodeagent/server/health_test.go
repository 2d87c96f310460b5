package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/store"
)

func TestHealthProbes(t *testing.T) {
	dir, err := os.MkdirTemp("", "nphealth")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	alloc := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.Config{WarmIPTarget: 1, BatchSize: 1, MaxIPs: 250}})
	srv := New(alloc, Config{SocketPath: filepath.Join(dir, "agent.sock")})
	var synced atomic.Bool
	h := HealthHandler(srv, synced.Load)
	probe := func(path string) int {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	expect := func(stage string, live, ready int) {
		t.Helper()
		if got := probe(PathLive); got != live {
			t.Errorf("%s: %s = %d, want %d", stage, PathLive, got, live)
		}
		if got := probe(PathReady); got != ready {
			t.Errorf("%s: %s = %d, want %d", stage, PathReady, got, ready)
		}
	}
	expect("before the socket is served", http.StatusOK, http.StatusServiceUnavailable)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	for i := 0; i < 500 && !srv.Serving(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	expect("socket served, pool never synced", http.StatusOK, http.StatusServiceUnavailable)
	alloc.UpdatePool(ipam.PoolState{Found: true, IPs: []string{"10.0.0.1"}})
	synced.Store(alloc.Synced())
	expect("socket served, pool synced", http.StatusOK, http.StatusOK)

	// A socket that stopped answering fails both probes, so the kubelet
	// restarts the agent.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv.serving.Store(true) // as if the serving loop had died without cleanup
	expect("socket no longer answers", http.StatusServiceUnavailable, http.StatusServiceUnavailable)
}
