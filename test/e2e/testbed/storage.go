package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/internal/armsim"
)

// The storage account's public endpoint: a site of its own in a documentation range
// (RFC 5737 TEST-NET-1), outside the VNet like any Azure PaaS public address.
const (
	StorageCIDR = "192.0.2.0/24"
	// StorageIP is the account's endpoint (<account>.blob.core.windows.net).
	StorageIP = "192.0.2.10"
	// StoragePort is where its HTTP server listens.
	StoragePort = 80
	// DefaultOutboundIP is the address traffic to storage leaves the VNet as when it
	// does not take a service endpoint and its source has no public IP of its own:
	// Azure's default outbound access SNATs it to a public address; the fabric uses
	// its own address on the storage link.
	DefaultOutboundIP = "192.0.2.1"
	storageLinkNm     = "f-storage"
	storageGateway    = DefaultOutboundIP
)

// StorageConfig models a storage account whose firewall allows selected virtual
// networks only (networkAcls.defaultAction Deny with virtualNetworkRules, as `az
// storage account network-rule add --subnet` sets them).
type StorageConfig struct {
	// VirtualNetworkRules name subnets of vnet-e2e the firewall allows. As in
	// Azure, a rule is effective only while its subnet has the Microsoft.Storage
	// service endpoint (a rule added with ignoreMissingVnetServiceEndpoint waits
	// for it): only then does the traffic arrive with the subnet's identity.
	VirtualNetworkRules []string
}

// StorageReply is what the storage endpoint answered one request.
type StorageReply struct {
	// Status is the HTTP status: 200, or 403 when the firewall refused the caller.
	Status int
	// Seen is the source address the storage service saw.
	Seen string
	// ErrorCode is the x-ms-error-code header (AuthorizationFailure on a refusal).
	ErrorCode string
}

// startStorage creates the storage site and serves its endpoint. Its firewall decides
// per request from armsim's current state: the caller's address must lie in a subnet
// named by a virtual network rule that has the Microsoft.Storage service endpoint.
func (tb *Testbed) startStorage(ctx context.Context) error {
	site, err := tb.AddSite(Site{Name: "storage", CIDR: StorageCIDR, HostIP: StorageIP, Gateway: storageGateway})
	if err != nil {
		return err
	}
	l, err := tb.Listen(ctx, site.NS, StoragePort)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(tb.serveStorage), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	tb.addCloser(func() error { return srv.Close() })
	return nil
}

// serveStorage answers like Azure Storage: 200 with the caller's address (an echo
// blob) when the firewall lets it in, else 403 AuthorizationFailure.
func (tb *Testbed) serveStorage(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	src, err := netip.ParseAddr(host)
	w.Header().Set("x-nicpool-seen-source", host)
	if err != nil || !tb.storageAllows(src) {
		w.Header().Set("x-ms-error-code", "AuthorizationFailure")
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationFailure</Code>"+
			"<Message>This request is not authorized to perform this operation. (source %s)</Message></Error>", host)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintln(w, host)
}

// storageAllows reports whether src lies in a subnet with a virtual network rule and
// the Microsoft.Storage service endpoint.
func (tb *Testbed) storageAllows(src netip.Addr) bool {
	if tb.cfg.Storage == nil {
		return false
	}
	for _, sn := range tb.Sim.Snapshot().Network.Subnets {
		if !sn.Prefix.Contains(src) || !slices.Contains(sn.ServiceEndpoints, armsim.ServiceStorage) {
			continue
		}
		for _, name := range tb.cfg.Storage.VirtualNetworkRules {
			if strings.HasSuffix(sn.ID, "/virtualnetworks/vnet-e2e/subnets/"+lower(name)) {
				return true
			}
		}
	}
	return false
}

// StorageGet sends one GET to the storage endpoint from inside n and returns the
// reply; an error means no HTTP answer (the connection failed).
func StorageGet(ctx context.Context, n *Namespace) (StorageReply, error) {
	var rep StorageReply
	err := n.Do(func(ns.NetNS) error {
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(StorageIP, fmt.Sprint(StoragePort)))
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer func() { _ = c.Close() }()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		req, _ := http.NewRequest(http.MethodGet, "http://account.blob.core.windows.net/probe/seen", nil)
		req.Close = true
		if err := req.Write(c); err != nil {
			return fmt.Errorf("send request: %w", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return fmt.Errorf("read reply: %w", err)
		}
		defer func() { _ = resp.Body.Close() }()
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)); err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		rep = StorageReply{Status: resp.StatusCode, Seen: resp.Header.Get("x-nicpool-seen-source"), ErrorCode: resp.Header.Get("x-ms-error-code")}
		return nil
	})
	if err != nil {
		return StorageReply{}, fmt.Errorf("get storage endpoint from %s: %w", n.Name, err)
	}
	return rep, nil
}

// StorageEventually retries StorageGet until done accepts the reply or timeout passes
// (the fabric and the agents' SNAT follow ARM with a short delay); it returns the last
// reply and error.
func StorageEventually(ctx context.Context, n *Namespace, timeout time.Duration, done func(StorageReply) bool) (StorageReply, error) {
	deadline := time.Now().Add(timeout)
	for {
		rep, err := StorageGet(ctx, n)
		if err == nil && done(rep) {
			return rep, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = errors.New("the reply did not match in time")
			}
			return rep, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// StorageCheck is one request to the storage endpoint and the answer it must get.
type StorageCheck struct {
	Name, FromName string
	From           *Namespace
	WantStatus     int
	WantSeen       string
}

// StorageResult is a StorageCheck's outcome.
type StorageResult struct {
	StorageCheck
	Reply StorageReply
	Err   error
}

// OK reports whether the check got the answer it wants.
func (r StorageResult) OK() bool {
	return r.Err == nil && r.Reply.Status == r.WantStatus && r.Reply.Seen == r.WantSeen
}

// RunStorageChecks runs each check, retrying it for up to settle (the fabric and the
// agents' SNAT follow ARM with a delay).
func RunStorageChecks(ctx context.Context, checks []StorageCheck, settle time.Duration) []StorageResult {
	out := make([]StorageResult, 0, len(checks))
	for _, c := range checks {
		r := StorageResult{StorageCheck: c}
		r.Reply, r.Err = StorageEventually(ctx, c.From, settle, func(rep StorageReply) bool {
			return rep.Status == c.WantStatus && rep.Seen == c.WantSeen
		})
		out = append(out, r)
	}
	return out
}

// FormatStorageChecks renders results as a table.
func FormatStorageChecks(results []StorageResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-44s %-12s %-15s %-8s %-16s %s\n", "PATH", "FROM", "TO", "ANSWER", "SOURCE SEEN", "RESULT")
	for _, r := range results {
		answer, seen := fmt.Sprint(r.Reply.Status), r.Reply.Seen
		if r.Err != nil && r.Reply.Status == 0 {
			answer, seen = "-", "(no connection)"
		}
		verdict := "ok"
		if !r.OK() {
			verdict = fmt.Sprintf("FAIL (want %d seen as %s)", r.WantStatus, r.WantSeen)
		}
		fmt.Fprintf(&b, "%-44s %-12s %-15s %-8s %-16s %s\n", r.Name, r.FromName, StorageIP, answer, seen, verdict)
	}
	return b.String()
}
