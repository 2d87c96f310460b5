package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// startServers runs the echo servers on loopback ports the kernel picks and
// returns their addresses.
func startServers(t *testing.T) (httpAddr, tcpAddr, udpAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 3)
	go func() { done <- serveHTTP(ctx, hl, "echo-pod") }()
	go func() { done <- serveTCP(ctx, tl, "echo-pod") }()
	go func() { done <- serveUDP(ctx, uc, "echo-pod") }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			if err := <-done; err != nil {
				t.Errorf("server stopped with %v", err)
			}
		}
	})
	return hl.Addr().String(), tl.Addr().String(), uc.LocalAddr().String()
}

// decode parses the first line of out as a Report.
func decode(t *testing.T, out string) Report {
	t.Helper()
	line, _, _ := strings.Cut(out, "\n")
	var r Report
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("output %q is not a report: %v", out, err)
	}
	return r
}

func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), args, &out)
	return out.String(), err
}

func TestServersReportWhatTheySaw(t *testing.T) {
	httpAddr, tcpAddr, udpAddr := startServers(t)
	tests := []struct {
		name string
		args []string
		want Report
		rest string
	}{
		{"http", []string{"get", "http://" + httpAddr + "/some/path"}, Report{Hostname: "echo-pod", Local: httpAddr, Proto: "http", Path: "/some/path"}, ""},
		{"tcp", []string{"tcp", "--send", "hello", tcpAddr}, Report{Hostname: "echo-pod", Local: tcpAddr, Proto: "tcp"}, "hello"},
		{"tcp without data", []string{"tcp", tcpAddr}, Report{Hostname: "echo-pod", Local: tcpAddr, Proto: "tcp"}, ""},
		{"udp", []string{"udp", "--send", "ping", udpAddr}, Report{Hostname: "echo-pod", Local: udpAddr, Proto: "udp", Data: "ping"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runOut(t, tt.args...)
			if err != nil {
				t.Fatalf("run %v: %v", tt.args, err)
			}
			got := decode(t, out)
			host, port, err := net.SplitHostPort(got.Source)
			if err != nil || host != "127.0.0.1" || port == "0" {
				t.Errorf("source = %q, want 127.0.0.1:<client port>", got.Source)
			}
			got.Source = ""
			if got != tt.want {
				t.Errorf("report = %+v, want %+v", got, tt.want)
			}
			if _, rest, _ := strings.Cut(out, "\n"); rest != tt.rest {
				t.Errorf("after the report got %q, want %q", rest, tt.rest)
			}
		})
	}
}

func TestGetFailsOnErrorStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no such thing", http.StatusNotFound)
	}))
	defer srv.Close()
	out, err := runOut(t, "get", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("get of a 404 returned %v, want an error naming the status", err)
	}
	if !strings.Contains(out, "no such thing") {
		t.Errorf("body %q not printed", out)
	}
}

func TestHealthz(t *testing.T) {
	httpAddr, _, _ := startServers(t)
	out, err := runOut(t, "get", "http://"+httpAddr+"/healthz")
	if err != nil || out != "ok\n" {
		t.Errorf("healthz = %q, %v", out, err)
	}
}

func TestConnectRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	for _, args := range [][]string{{"tcp", addr}, {"get", "http://" + addr + "/"}} {
		if _, err := runOut(t, args...); err == nil || errors.Is(err, errUsage) {
			t.Errorf("%v against a closed port returned %v, want a connection error", args, err)
		}
	}
}

// fakeDNS answers A queries for name with ip and every other query with no
// records, on a loopback UDP port.
func fakeDNS(t *testing.T, name string, ip net.IP) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			// Header (12 bytes), then one question: labels, 0, type, class.
			end := 12
			var labels []string
			for end < n && q[end] != 0 {
				l := int(q[end])
				labels = append(labels, string(q[end+1:end+1+l]))
				end += 1 + l
			}
			end += 5
			qtype := binary.BigEndian.Uint16(q[end-4:])
			resp := append([]byte{}, q[:end]...)
			resp[2] |= 0x84 // response, authoritative
			resp[3] = 0
			binary.BigEndian.PutUint16(resp[6:], 0)
			binary.BigEndian.PutUint16(resp[10:], 0)
			if qtype == 1 && strings.Join(labels, ".") == name {
				binary.BigEndian.PutUint16(resp[6:], 1)
				resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4)
				resp = append(resp, ip.To4()...)
			} else if qtype == 1 {
				resp[3] = 3 // NXDOMAIN
			}
			_, _ = c.WriteTo(resp, from)
		}
	}()
	return c.LocalAddr().String()
}

func TestResolve(t *testing.T) {
	server := fakeDNS(t, "echo.default.svc.cluster.local", net.IPv4(10, 96, 0, 12))
	out, err := runOut(t, "resolve", "--server", server, "echo.default.svc.cluster.local.")
	if err != nil || out != "10.96.0.12\n" {
		t.Errorf("resolve = %q, %v; want 10.96.0.12", out, err)
	}
	if out, err := runOut(t, "resolve", "--server", server, "missing.default.svc.cluster.local."); err == nil {
		t.Errorf("resolve of a missing name = %q, want an error", out)
	}
}

func TestAddrsListsNoLoopback(t *testing.T) {
	out, err := runOut(t, "addrs")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "127.0.0.1/") {
			t.Errorf("addrs printed loopback: %q", line)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"get"},
		{"get", "a", "b"},
		{"tcp", "--timeout", "0s", "127.0.0.1:1"},
		{"serve", "--http", "", "--tcp", "", "--udp", ""},
		{"resolve", "--send", "x", "name"},
	} {
		if _, err := runOut(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("run %q = %v, want a usage error", args, err)
		}
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"}, os.Stdout)
	}()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after cancel returned %v", err)
	}
}
