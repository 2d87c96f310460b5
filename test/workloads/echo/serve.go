package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Report is what the servers answer: who answered and whom they saw.
type Report struct {
	// Hostname is the server's host name (the pod's name in Kubernetes).
	Hostname string `json:"hostname"`
	// Source is the client address the server saw, IP:PORT.
	Source string `json:"source"`
	// Local is the server address the client reached, IP:PORT.
	Local string `json:"local"`
	// Proto is http, tcp or udp.
	Proto string `json:"proto"`
	// Path is the HTTP request path.
	Path string `json:"path,omitempty"`
	// Data is the UDP datagram received.
	Data string `json:"data,omitempty"`
}

// servers are the listen addresses; an empty one is not served.
type servers struct {
	HTTP, TCP, UDP string
}

// serve listens on every configured address and serves until ctx ends or
// one server fails.
func (s servers) serve(ctx context.Context) error {
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("read host name: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lc net.ListenConfig
	var run []func() error
	if s.HTTP != "" {
		l, err := lc.Listen(ctx, "tcp", s.HTTP)
		if err != nil {
			return fmt.Errorf("listen http on %s: %w", s.HTTP, err)
		}
		run = append(run, func() error { return serveHTTP(ctx, l, host) })
	}
	if s.TCP != "" {
		l, err := lc.Listen(ctx, "tcp", s.TCP)
		if err != nil {
			return fmt.Errorf("listen tcp on %s: %w", s.TCP, err)
		}
		run = append(run, func() error { return serveTCP(ctx, l, host) })
	}
	if s.UDP != "" {
		c, err := lc.ListenPacket(ctx, "udp", s.UDP)
		if err != nil {
			return fmt.Errorf("listen udp on %s: %w", s.UDP, err)
		}
		run = append(run, func() error { return serveUDP(ctx, c, host) })
	}
	if len(run) == 0 {
		return fmt.Errorf("%w: serve: --http, --tcp and --udp are all empty", errUsage)
	}
	// The first server to stop (failure or ctx) stops the others.
	errs := make(chan error, len(run))
	for _, f := range run {
		go func() { errs <- f(); cancel() }()
	}
	var all []error
	for range run {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func serveHTTP(ctx context.Context, l net.Listener, host string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		rep := Report{Hostname: host, Source: r.RemoteAddr, Proto: "http", Path: r.URL.Path}
		if local != nil {
			rep.Local = local.String()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// serveTCP writes a Report line to each connection, then echoes what the
// client sends until it closes its side.
func serveTCP(ctx context.Context, l net.Listener, host string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() { <-ctx.Done(); _ = l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept tcp: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = c.Close() }()
			// A client that never closes must not pin the goroutine forever.
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			rep := Report{Hostname: host, Source: c.RemoteAddr().String(), Local: c.LocalAddr().String(), Proto: "tcp"}
			if err := json.NewEncoder(c).Encode(rep); err != nil {
				return
			}
			_, _ = io.Copy(c, c)
		}()
	}
}

// serveUDP answers each datagram with a Report holding its payload.
func serveUDP(ctx context.Context, c net.PacketConn, host string) error {
	go func() { <-ctx.Done(); _ = c.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read udp: %w", err)
		}
		rep := Report{Hostname: host, Source: from.String(), Local: c.LocalAddr().String(), Proto: "udp", Data: string(buf[:n])}
		b, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("encode udp report: %w", err)
		}
		_, _ = c.WriteTo(append(b, '\n'), from)
	}
}
