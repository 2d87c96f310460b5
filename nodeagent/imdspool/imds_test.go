package imdspool

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/pool"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/poolsource"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// fakeIMDS answers like IMDS with a NIC the test edits.
type fakeIMDS struct {
	mu     sync.Mutex
	ips    []string // primary first
	status int
	body   string // when set, sent instead of the NIC
}

func (f *fakeIMDS) set(ips ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ips, f.status, f.body = ips, 0, ""
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("api-version") == "" {
		http.Error(w, `{"error":"Bad request"}`, http.StatusBadRequest)
		return
	}
	if f.status != 0 {
		http.Error(w, f.body, f.status)
		return
	}
	if f.body != "" {
		_, _ = w.Write([]byte(f.body))
		return
	}
	var addrs []string
	for _, ip := range f.ips {
		addrs = append(addrs, fmt.Sprintf(`{"privateIpAddress":%q,"publicIpAddress":""}`, ip))
	}
	fmt.Fprintf(w, `{"interface":[{"ipv4":{"ipAddress":[%s],"subnet":[{"address":"10.1.0.0","prefix":"24"}]},"ipv6":{"ipAddress":[]},"macAddress":"000D3A000001"}]}`, strings.Join(addrs, ","))
}

func newSource(t *testing.T, endpoint string, held func() []string) *Source {
	t.Helper()
	s, err := New(Config{Endpoint: endpoint, Held: held, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestObserveFromArmsim reads a VM's pre-provisioned configurations from
// armsim's IMDS: the primary is reported as such and never in the pool.
func TestObserveFromArmsim(t *testing.T) {
	topo := armsim.GenerateTopology("00000000-0000-0000-0000-000000000001", "rg", "10.240.0.0/16", "10.240.0.0/24", 2)
	topo.NICs[0].PrimaryIP = "10.240.0.10"
	topo.NICs[0].ExtraIPConfigs = []string{"docker-1", "docker-2", "docker-3"}
	sim, err := armsim.New(armsim.Options{Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	h := sim.IMDSHandler()
	// The testbed's fabric delivers the VM's own source address; here the
	// test stands in for it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = "10.240.0.10:33000"
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	st, err := newSource(t, srv.URL, nil).Observe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.PrimaryIP != "10.240.0.10" || st.SubnetCIDR != "10.240.0.0/24" || !st.Found || len(st.IPs) != 3 || slices.Contains(st.IPs, "10.240.0.10") {
		t.Fatalf("pool = %+v, want primary 10.240.0.10, subnet 10.240.0.0/24 and three other IPs", st)
	}
	if !slices.Equal(st.VNetAddressSpace, []string{"10.240.0.0/24"}) {
		t.Errorf("vnet address space %v, want the subnet when none is configured", st.VNetAddressSpace)
	}
}

// TestBadAnswers: every malformed or refused answer is a clear error, never
// a panic, and never a pool.
func TestBadAnswers(t *testing.T) {
	ok := func(addrs string) string {
		return `{"interface":[{"ipv4":{"ipAddress":[` + addrs + `],"subnet":[{"address":"10.1.0.0","prefix":"24"}]},"macAddress":"AA"}]}`
	}
	tests := []struct {
		name, body, want string
		status           int
	}{
		{name: "server error", status: 500, body: "boom", want: "status 500"},
		{name: "not json", body: "<html>", want: "decode instance metadata"},
		{name: "no interface", body: `{"interface":[]}`, want: "no network interface"},
		{name: "no subnet", body: `{"interface":[{"ipv4":{"ipAddress":[{"privateIpAddress":"10.1.0.4"}],"subnet":[]}}]}`, want: "no ipv4 subnet"},
		{name: "bad prefix", body: `{"interface":[{"ipv4":{"ipAddress":[{"privateIpAddress":"10.1.0.4"}],"subnet":[{"address":"10.1.0.0","prefix":"x"}]}}]}`, want: "not a number"},
		{name: "prefix out of range", body: `{"interface":[{"ipv4":{"ipAddress":[{"privateIpAddress":"10.1.0.4"}],"subnet":[{"address":"10.1.0.0","prefix":"40"}]}}]}`, want: "not an IPv4 prefix"},
		{name: "no address", body: ok(""), want: "no ipv4 address"},
		{name: "address outside the subnet", body: ok(`{"privateIpAddress":"10.1.0.4"},{"privateIpAddress":"10.9.0.5"}`), want: "not an IPv4 address of subnet"},
		{name: "garbage address", body: ok(`{"privateIpAddress":"10.1.0.4"},{"privateIpAddress":"banana"}`), want: "not an IPv4 address"},
		{name: "duplicate address", body: ok(`{"privateIpAddress":"10.1.0.4"},{"privateIpAddress":"10.1.0.5"},{"privateIpAddress":"10.1.0.5"}`), want: "twice"},
		{name: "huge answer", body: `{"interface":[` + strings.Repeat(" ", maxBody+10) + `]}`, want: "larger than"},
	}
	f := &fakeIMDS{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	src := newSource(t, srv.URL, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.status, f.body = tt.status, tt.body
			f.mu.Unlock()
			st, err := src.Observe(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Observe = %+v, %v; want an error containing %q", st, err, tt.want)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close()
		if _, err := newSource(t, url, nil).Observe(t.Context()); err == nil || !strings.Contains(err.Error(), "read instance metadata") {
			t.Fatalf("Observe of a closed endpoint: %v", err)
		}
	})
	if _, err := New(Config{Endpoint: "https://169.254.169.254"}); err == nil {
		t.Error("New accepted an https endpoint")
	}
}

// TestHandsOutOnlyWhatTheAdminProvisioned drives an allocator from the
// source: only the secondary IPs are handed out, never the primary; the
// pool never asks for more nor gives any back; an IP added later is learned
// on the next read; one removed while held stays with its container and is
// counted as held outside the pool.
func TestHandsOutOnlyWhatTheAdminProvisioned(t *testing.T) {
	f := &fakeIMDS{}
	f.set("10.1.0.4", "10.1.0.5", "10.1.0.6")
	srv := httptest.NewServer(f)
	defer srv.Close()
	// Release cooldown 0: a source that planned releases would give idle
	// IPs back at once, which a read-only one must never do.
	policy := pool.Config{WarmIPTarget: 1, MinIPTarget: 0, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: 0}
	alloc := ipam.New(store.NewMemStore(), ipam.Config{Policy: policy, AllocTimeout: 200 * time.Millisecond})
	held := func() []string {
		var out []string
		for _, r := range alloc.Records() {
			out = append(out, r.IP)
		}
		return out
	}
	src := newSource(t, srv.URL, held)
	sync := func() {
		t.Helper()
		if err := poolsource.SyncOnce(t.Context(), src, alloc); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	ctx := context.Background()
	var got []string
	for i := range 2 {
		resp, err := alloc.Allocate(ctx, agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: fmt.Sprint("c", i), IfName: "eth0"}})
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
		if resp.PrimaryIP != "10.1.0.4" || resp.SubnetCIDR != "10.1.0.0/24" {
			t.Errorf("response %+v lacks the primary IP or subnet", resp)
		}
		got = append(got, resp.IP)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"10.1.0.5", "10.1.0.6"}) {
		t.Fatalf("handed out %v, want the two secondaries", got)
	}
	if _, err := alloc.Allocate(ctx, agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: "c9", IfName: "eth0"}}); err == nil {
		t.Fatal("a third allocation got an IP from a pool of two (the primary?)")
	}
	// An idle IP is never given back: release one and resync many times.
	if _, err := alloc.Release(agentapi.AttachmentKey{ContainerID: "c0", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		sync()
	}
	if s := alloc.Snapshot(); s.Usable != 2 {
		t.Fatalf("usable IPs %d after an idle period, want 2: a read-only pool gave one back", s.Usable)
	}
	// The administrator adds one and removes 10.1.0.6, still held by c1.
	f.set("10.1.0.4", "10.1.0.5", "10.1.0.7")
	sync()
	if s := alloc.Snapshot(); s.HeldOutsidePool != 1 || s.Usable != 2 {
		t.Fatalf("snapshot %+v, want 1 held outside the pool and 2 usable", s)
	}
	if rec, ok := alloc.Check(agentapi.AttachmentKey{ContainerID: "c1", IfName: "eth0"}); !ok || rec.IP != "10.1.0.6" {
		t.Fatalf("container c1 lost its IP: %+v %v", rec, ok)
	}
	for i := 2; i < 4; i++ {
		resp, err := alloc.Allocate(ctx, agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: fmt.Sprint("c", i), IfName: "eth0"}})
		if err != nil {
			t.Fatalf("allocate %d after the change: %v", i, err)
		}
		if resp.IP == "10.1.0.6" || resp.IP == "10.1.0.4" {
			t.Fatalf("handed out %s, removed or primary", resp.IP)
		}
	}
}
