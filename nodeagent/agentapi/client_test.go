package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve runs h on a unix socket for the test and returns a client for it.
func serve(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return NewClient(sock)
}

func TestClientAgainstNetHTTPServer(t *testing.T) {
	long := strings.Repeat("x", 64<<10) // beyond net/http's buffer: no Content-Length
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantIP  string
		wantErr string
		code    uint
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) {
			var req AllocateRequest
			if r.Method != "POST" || r.URL.Path != PathAllocate || json.NewDecoder(r.Body).Decode(&req) != nil || req.ContainerID != "c1" {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			_ = json.NewEncoder(w).Encode(AllocateResponse{IP: "10.0.0.7"})
		}, "10.0.0.7", "", 0},
		{"body without content length", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"ip":"10.0.0.8","subnetCIDR":"`+long+`"}`)
		}, "10.0.0.8", "", 0},
		{"agent error", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(Error{Code: CodeTryAgainLater, Message: "no free IP"})
		}, "", "no free IP", CodeTryAgainLater},
		{"not json", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusBadGateway)
		}, "", "answered 502: boom", CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, tt.handler)
			resp, err := c.Allocate(context.Background(), AllocateRequest{Attachment: Attachment{AttachmentKey: AttachmentKey{ContainerID: "c1", IfName: "eth0"}}})
			if tt.wantErr == "" {
				if err != nil || resp.IP != tt.wantIP {
					t.Fatalf("Allocate = %+v, %v; want IP %s", resp, err, tt.wantIP)
				}
				return
			}
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Code != tt.code || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Allocate error = %v, want code %d containing %q", err, tt.code, tt.wantErr)
			}
		})
	}
}

// A silent agent ends the call at the context's deadline, seen as
// context.DeadlineExceeded (the plugin then tells the runtime to retry).
func TestClientHonoursContextDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	c := serve(t, func(http.ResponseWriter, *http.Request) { <-block })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Status(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Status against a silent agent = %v, want context.DeadlineExceeded", err)
	}
}

func TestClientUnreachableAgent(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "missing.sock"))
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "missing.sock") {
		t.Fatalf("Status without an agent = %v, want an error naming the socket", err)
	}
}
