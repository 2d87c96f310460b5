package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/gc"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/store"
)

func startServer(t *testing.T, ips []string) (*agentapi.Client, *ipam.Allocator, string) {
	t.Helper()
	return startServerWaiting(t, ips, 100*time.Millisecond)
}

// startServerWaiting is startServer with the allocator's --alloc-timeout.
func startServerWaiting(t *testing.T, ips []string, allocTimeout time.Duration) (*agentapi.Client, *ipam.Allocator, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "npsrv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "run", "agent.sock")
	alloc := ipam.New(store.NewMemStore(), ipam.Config{
		Policy:       pool.Config{WarmIPTarget: 1, BatchSize: 1, MaxIPs: 250},
		AllocTimeout: allocTimeout,
	})
	alloc.UpdatePool(ipam.PoolState{Found: true, IPs: ips, SubnetCIDR: "10.1.0.0/16", PrimaryIP: "10.1.0.4"})
	srv := New(alloc, Config{SocketPath: sock})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("socket %s left behind after shutdown", sock)
		}
	})
	c := agentapi.NewClient(sock)
	for range 200 {
		if _, err := c.Status(context.Background()); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c, alloc, sock
}

func key(cid string) agentapi.AttachmentKey {
	return agentapi.AttachmentKey{ContainerID: cid, IfName: "eth0"}
}

func apiCode(err error) uint {
	var e *agentapi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestSocketRoundTrip(t *testing.T) {
	c, _, sock := startServer(t, []string{"10.1.0.10", "10.1.0.11"})
	ctx := context.Background()
	for path, want := range map[string]os.FileMode{sock: 0o600, filepath.Dir(sock): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %o", path, fi.Mode().Perm(), err, want)
		}
	}
	att := agentapi.Attachment{AttachmentKey: key("abc"), PodNamespace: "ns", PodName: "web", NetNS: "/var/run/netns/x"}
	first, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: att})
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if first.SubnetCIDR != "10.1.0.0/16" || first.PrimaryIP != "10.1.0.4" {
		t.Errorf("Allocate response %+v lacks the subnet or primary IP", first)
	}
	again, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: att})
	if err != nil || again.IP != first.IP {
		t.Errorf("second Allocate = %v, %v; want %s", again, err, first.IP)
	}
	chk, err := c.Check(ctx, agentapi.CheckRequest{AttachmentKey: att.AttachmentKey})
	if err != nil || chk.IP != first.IP || chk.PodName != "web" || chk.NetNS != att.NetNS {
		t.Errorf("Check = %+v, %v", chk, err)
	}
	st, err := c.Status(ctx)
	if err != nil || !st.Ready || st.Capacity != 2 || st.Allocated != 1 || st.Free != 1 {
		t.Errorf("Status = %+v, %v; want ready, capacity 2, allocated 1, free 1", st, err)
	}
	rel, err := c.Release(ctx, agentapi.ReleaseRequest{AttachmentKey: att.AttachmentKey})
	if err != nil || rel.IP != first.IP {
		t.Errorf("Release = %+v, %v", rel, err)
	}
	if _, err := c.Check(ctx, agentapi.CheckRequest{AttachmentKey: att.AttachmentKey}); !agentapi.IsNotFound(err) {
		t.Errorf("Check after release = %v, want not found", err)
	}
	if rel, err := c.Release(ctx, agentapi.ReleaseRequest{AttachmentKey: att.AttachmentKey}); err != nil || rel.IP != "" {
		t.Errorf("second Release = %+v, %v; want success with no IP", rel, err)
	}
}

func TestSocketErrors(t *testing.T) {
	c, _, _ := startServer(t, []string{"10.1.0.10"})
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want uint
	}{
		{"allocate without container ID", func() error {
			_, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{IfName: "eth0"}}})
			return err
		}, agentapi.CodeInvalidFields},
		{"release without ifName", func() error {
			_, err := c.Release(ctx, agentapi.ReleaseRequest{AttachmentKey: agentapi.AttachmentKey{ContainerID: "x"}})
			return err
		}, agentapi.CodeInvalidFields},
		{"check without anything", func() error { _, err := c.Check(ctx, agentapi.CheckRequest{}); return err }, agentapi.CodeInvalidFields},
		{"pool exhausted answers try again later", func() error {
			if _, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key("one")}}); err != nil {
				return err
			}
			_, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key("two")}})
			return err
		}, agentapi.CodeTryAgainLater},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); apiCode(err) != tt.want {
				t.Errorf("got %v (code %d), want code %d", err, apiCode(err), tt.want)
			}
		})
	}
}

// A full node must say so before the plugin's own deadline: with the agent's
// --alloc-timeout as long as the plugin's timeoutSeconds (both 60 s by
// default) the plugin used to time out first, and kubelet's event said "did
// not answer in time" instead of why.
func TestFullPoolAnswersBeforeTheCallersDeadline(t *testing.T) {
	c, _, _ := startServerWaiting(t, []string{"10.1.0.10"}, time.Hour)
	if _, err := c.Allocate(context.Background(), agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key("one")}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key("two")}})
	if apiCode(err) != agentapi.CodeTryAgainLater || !strings.Contains(err.Error(), "no free IP") {
		t.Fatalf("Allocate on a full pool with a 2 s deadline = %v, want the agent's try-again-later saying no free IP", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the answer came after the caller's deadline: %v", err)
	}
}

func TestNegativeWaitIsRefused(t *testing.T) {
	c, _, _ := startServer(t, []string{"10.1.0.10"})
	_, err := c.Allocate(context.Background(), agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key("one")}, WaitMillis: -5})
	if apiCode(err) != agentapi.CodeInvalidFields || !strings.Contains(err.Error(), "waitMillis") {
		t.Fatalf("Allocate with waitMillis -5 = %v, want invalid fields naming waitMillis", err)
	}
}

func TestMalformedBodyAndUnknownRoute(t *testing.T) {
	_, alloc, _ := startServer(t, nil)
	h := New(alloc, Config{}).Handler()
	tests := []struct {
		name, method, path, body string
		wantStatus               int
	}{
		{"malformed json", http.MethodPost, agentapi.PathAllocate, "{", http.StatusBadRequest},
		{"wrong method", http.MethodGet, agentapi.PathAllocate, "", http.StatusBadRequest},
		{"unknown route", http.MethodPost, "/v2/allocate", "{}", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, stringsReader(tt.body)))
			var e agentapi.Error
			if rec.Code != tt.wantStatus || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Message == "" {
				t.Errorf("status %d body %q, want %d with an agentapi.Error", rec.Code, rec.Body.String(), tt.wantStatus)
			}
		})
	}
}

func TestGCReleasesUnlisted(t *testing.T) {
	c, _, _ := startServer(t, []string{"10.1.0.10", "10.1.0.11", "10.1.0.12"})
	ctx := context.Background()
	for _, id := range []string{"keep", "drop1", "drop2"} {
		if _, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key(id)}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.GC(ctx, agentapi.GCRequest{ValidAttachments: []agentapi.AttachmentKey{key("keep")}})
	if err != nil || len(resp.Released) != 2 {
		t.Fatalf("GC = %+v, %v; want 2 released", resp, err)
	}
	if _, err := c.Check(ctx, agentapi.CheckRequest{AttachmentKey: key("keep")}); err != nil {
		t.Errorf("GC released a valid attachment: %v", err)
	}
}

func TestStaleSocketIsReplacedButOtherFilesAreNot(t *testing.T) {
	dir, err := os.MkdirTemp("", "npstale")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	sock := filepath.Join(dir, "a.sock")
	old, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = old.Close()
	ln, err := Listen(t.Context(), sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if _, err := Listen(t.Context(), sock); err == nil {
		t.Errorf("Listen took over a socket another agent is serving on")
	}
	_ = ln.Close()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(t.Context(), plain); err == nil {
		t.Errorf("Listen replaced a regular file")
	}
}

// socketHTTP returns an http.Client that talks to the agent's socket.
func socketHTTP(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}

// Introspection (pod names, container IDs, netns paths) is served on the
// root-only socket, not on a TCP port any local user can reach.
func TestIntrospectionOnTheSocket(t *testing.T) {
	c, _, sock := startServer(t, []string{"10.1.0.10"})
	if _, err := c.Allocate(context.Background(), agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key("x"), PodNamespace: "ns", PodName: "p"}}); err != nil {
		t.Fatal(err)
	}
	hc := socketHTTP(sock)
	resp, err := hc.Get("http://agent" + PathAllocations)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var got AllocationsResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || len(got.Allocations) != 1 || got.Allocations[0].PodName != "p" {
		t.Errorf("GET %s = %d %+v (%v)", PathAllocations, resp.StatusCode, got, err)
	}
	post, err := hc.Post("http://agent"+PathAllocations, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	_ = post.Body.Close()
	if post.StatusCode == http.StatusOK {
		t.Errorf("introspection accepted a POST")
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func TestGCRefusesAMissingListAndOtherNetworks(t *testing.T) {
	c, alloc, _ := startServer(t, []string{"10.1.0.10", "10.1.0.11", "10.1.0.12"})
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: key(id)}}); err != nil {
			t.Fatal(err)
		}
	}
	h := New(alloc, Config{}).Handler()
	for _, body := range []string{`{}`, `{"validAttachments":null}`, `null`, `{"network":"nicpool"}`} {
		t.Run(body, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentapi.PathGC, strings.NewReader(body)))
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "validAttachments is required") {
				t.Errorf("GC %s = %d %s, want 400 naming validAttachments", body, rec.Code, rec.Body.String())
			}
			if n := len(alloc.Records()); n != 2 {
				t.Errorf("GC %s released allocations: %d left, want 2", body, n)
			}
		})
	}
	// Multus runs CNI GC once per network: another network's GC, listing
	// none of nicpool's attachments, must release none of them.
	resp, err := c.GC(ctx, agentapi.GCRequest{Network: "macvlan-net", ValidAttachments: []agentapi.AttachmentKey{}})
	if err != nil || len(resp.Released) != 0 || len(alloc.Records()) != 2 {
		t.Fatalf("GC of another network = %+v, %v; %d left, want nothing released", resp, err, len(alloc.Records()))
	}
	if _, err := c.GC(ctx, agentapi.GCRequest{Network: "other", ValidAttachments: []agentapi.AttachmentKey{{Network: "nicpool", ContainerID: "a", IfName: "eth0"}}}); apiCode(err) != agentapi.CodeInvalidFields {
		t.Errorf("GC listing another network's attachment = %v, want invalid fields", err)
	}
	if _, err := c.GC(ctx, agentapi.GCRequest{Network: "bad/name", ValidAttachments: []agentapi.AttachmentKey{}}); apiCode(err) != agentapi.CodeInvalidFields {
		t.Errorf("GC of an invalid network name = %v, want invalid fields", err)
	}
	resp, err = c.GC(ctx, agentapi.GCRequest{Network: agentapi.DefaultNetwork, ValidAttachments: []agentapi.AttachmentKey{{Network: agentapi.DefaultNetwork, ContainerID: "a", IfName: "eth0"}}})
	if err != nil || len(resp.Released) != 1 || resp.Released[0].ContainerID != "b" || resp.Released[0].Network != agentapi.DefaultNetwork {
		t.Errorf("GC of nicpool's network = %+v, %v; want b released", resp, err)
	}
}

func TestAttachmentsOfTwoNetworksAreDistinct(t *testing.T) {
	c, _, _ := startServer(t, []string{"10.1.0.10", "10.1.0.11"})
	ctx := context.Background()
	mine := key("same")
	other := mine
	other.Network = "second"
	a, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: mine}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Allocate(ctx, agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: other}})
	if err != nil || b.IP == a.IP {
		t.Fatalf("Allocate on a second network = %+v, %v; want its own IP (first got %s)", b, err, a.IP)
	}
	withDefault := mine
	withDefault.Network = agentapi.DefaultNetwork
	if chk, err := c.Check(ctx, agentapi.CheckRequest{AttachmentKey: withDefault}); err != nil || chk.IP != a.IP {
		t.Errorf("a key without a network is not the default network's: Check = %+v, %v", chk, err)
	}
}

// startRaw serves alloc on a fresh socket with cfg and returns its path.
func startRaw(t *testing.T, cfg Config) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "npraw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg.SocketPath = filepath.Join(dir, "agent.sock")
	alloc := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.Config{WarmIPTarget: 1, BatchSize: 1, MaxIPs: 250}, AllocTimeout: 100 * time.Millisecond})
	alloc.UpdatePool(ipam.PoolState{Found: true, IPs: []string{"10.1.0.10"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(alloc, cfg).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for range 200 {
		if c, err := net.Dial("unix", cfg.SocketPath); err == nil {
			_ = c.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cfg.SocketPath
}

func TestOversizedBodyIsRefused(t *testing.T) {
	sock := startRaw(t, Config{})
	valid := `{"containerID":"c1","ifName":"eth0","podNamespace":"ns","podName":"` + strings.Repeat("p", MaxBodyBytes) + `"}`
	doc := valid[:MaxBodyBytes-2] + `"}`
	if len(doc) != MaxBodyBytes {
		t.Fatalf("test document is %d bytes", len(doc))
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := hc.Post("http://agent"+agentapi.PathAllocate, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var e agentapi.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Message
	}
	// A document of exactly the limit is read whole: it fails validation
	// (pod name too long), not the size check.
	if code, msg := post(doc); code != http.StatusBadRequest || strings.Contains(msg, "larger than") {
		t.Errorf("a body of exactly %d bytes = %d %q, want 400 from validation", MaxBodyBytes, code, msg)
	}
	if code, msg := post(doc + "garbage"); code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "larger than") {
		t.Errorf("a body over %d bytes = %d %q, want 413 saying it is too large", MaxBodyBytes, code, msg)
	}
}

// Clients that send headers and then nothing, or keep a connection idle,
// must not hold it open indefinitely.
func TestSlowAndIdleClientsAreCutOff(t *testing.T) {
	sock := startRaw(t, Config{BodyReadTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		// Generous: the assertion is that the server ends the connection,
		// not how fast.
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		return c
	}
	t.Run("headers without a body", func(t *testing.T) {
		c := dial()
		if _, err := io.WriteString(c, "POST "+agentapi.PathRelease+" HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a request whose body never came: %v", err)
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("status %d, want %d", resp.StatusCode, http.StatusRequestTimeout)
		}
	})
	t.Run("idle kept-alive connection", func(t *testing.T) {
		c := dial()
		if _, err := io.WriteString(c, "GET "+agentapi.PathStatus+" HTTP/1.1\r\nHost: agent\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("idle connection: read = %v, want EOF (closed by the server)", err)
		}
	})
}

func TestRejectedRequestsAreLoggedShort(t *testing.T) {
	var logged strings.Builder
	log := funcr.New(func(prefix, args string) { logged.WriteString(args + "\n") }, funcr.Options{})
	alloc := ipam.New(store.NewMemStore(), ipam.Config{Policy: pool.Config{WarmIPTarget: 1, BatchSize: 1, MaxIPs: 250}})
	h := New(alloc, Config{Log: log}).Handler()
	body, err := json.Marshal(agentapi.AllocateRequest{Attachment: agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: strings.Repeat("a", 900_000), IfName: "eth0"}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentapi.PathAllocate, bytes.NewReader(body)))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", rec.Code)
	}
	if rec.Body.Len() > 2048 || logged.Len() > 4096 || logged.Len() == 0 {
		t.Errorf("answer %d bytes, log %d bytes: want both short (and the failure logged)", rec.Body.Len(), logged.Len())
	}
}

// A record rebuilt from a host route after --reset-state has no container ID
// the runtime could list: the runtime's CNI GC must not release it (its pod
// may be running); the agent's own GC releases it once its veth is gone.
func TestGCKeepsRecordsRebuiltFromHostRoutes(t *testing.T) {
	st := store.NewMemStore()
	rebuilt := store.Record{Attachment: agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: gc.RecoveredPrefix + "np0123456789a", IfName: "eth0"}}, IP: "10.1.0.10"}
	if _, err := st.Add(rebuilt); err != nil {
		t.Fatal(err)
	}
	alloc := ipam.New(st, ipam.Config{Policy: pool.Config{WarmIPTarget: 1, BatchSize: 1, MaxIPs: 250}})
	alloc.UpdatePool(ipam.PoolState{Found: true, IPs: []string{"10.1.0.10", "10.1.0.11"}})
	h := New(alloc, Config{}).Handler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, agentapi.PathGC, strings.NewReader(`{"network":"nicpool","validAttachments":[]}`)))
	if rec.Code != http.StatusOK {
		t.Fatalf("GC = %d %s", rec.Code, rec.Body.String())
	}
	if len(alloc.Records()) != 1 {
		t.Errorf("CNI GC released a record rebuilt from a host route: %s", rec.Body.String())
	}
}
