package poolsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/fakeclock"
	"github.com/nicpool/nicpool/nodeagent/agentapi"
)

// blackholeProxy forwards TCP connections to target until Blackhole, which
// makes every established connection go silent in both directions while
// its sockets stay open: what a NAT or conntrack entry that vanished, or a
// peer that lost power, looks like to the agent. New connections work.
type blackholeProxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	frozen chan struct{} // closed by Blackhole; replaced for later connections
	conns  []net.Conn    // every socket, closed when the test ends
	live   int           // connections not blackholed yet
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *blackholeProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{l: l, target: target, frozen: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *blackholeProxy) accept() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.live++
		frozen := p.frozen
		p.mu.Unlock()
		p.wg.Go(func() { pipe(out, in, frozen) })
		p.wg.Go(func() { pipe(in, out, frozen) })
	}
}

// pipe copies src to dst until either fails or frozen closes; after that it
// neither reads nor writes, so the kernel buffers fill and nothing answers.
func pipe(dst, src net.Conn, frozen chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-frozen:
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = dst.(*net.TCPConn).CloseWrite()
			}
			return
		}
	}
}

// Blackhole silences the established connections and returns how many.
func (p *blackholeProxy) Blackhole() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.frozen)
	p.frozen = make(chan struct{})
	for _, c := range p.conns {
		// Wake blocked reads; the pipes see frozen and stop.
		_ = c.SetReadDeadline(time.Now())
	}
	n := p.live
	p.live = 0
	return n
}

// TestAgentRecoversFromASilentlyDeadConnection reproduces the e2e stall of
// issue 12 item 1: the agent's only API connection stops delivering while
// its socket stays up. client-go's own health check would leave the pool
// watch and the spec patch stuck on it for 30 to 45 s; with HealthChecked the
// agent drops it within seconds, re-watches on a new connection, asks for
// more IPs and serves the waiting pods.
func TestAgentRecoversFromASilentlyDeadConnection(t *testing.T) {
	const node = "node-dead-conn"
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	viaProxy := rest.CopyConfig(env.Config)
	viaProxy.Host = "https://" + p.l.Addr().String()
	cfg, err := HealthChecked(viaProxy, DefaultHealth)
	if err != nil {
		t.Fatal(err)
	}
	create(t, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: node}})
	alloc, _ := agentAs(t, cfg, node, fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	eventually(t, "the agent asks for the minimum", func() bool { return getPool(t, node).Spec.RequestedIPCount == 2 })
	grant(t, node, addrs(200, 2))
	eventually(t, "the agent is ready", func() bool { ok, _ := alloc.Ready(); return ok })

	if n := p.Blackhole(); n == 0 {
		t.Fatal("the agent had no connection through the proxy to blackhole")
	}
	start := time.Now()
	// Three pods on a pool of two: the third needs the spec patch to get
	// through and the operator's answer to come back on the watch.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := alloc.Allocate(ctx, agentapi.Attachment{AttachmentKey: agentapi.AttachmentKey{ContainerID: fmt.Sprint("dead-", i), IfName: "eth0"}})
			errs <- err
		}()
	}
	for getPool(t, node).Spec.RequestedIPCount < 3 {
		if ctx.Err() != nil {
			t.Fatal("the agent's spec patch never reached the API server after its connection died")
		}
		time.Sleep(50 * time.Millisecond)
	}
	grant(t, node, addrs(200, 6))
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatalf("allocate after the connection died: %v", err)
		}
	}
	// The bound separates the fix from client-go's default (30 s without a
	// frame before the first PING) with room for a loaded machine.
	took := time.Since(start)
	t.Logf("The agent served the waiting pods %s after its connection died.", took.Round(100*time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("the agent needed %s to get past a silently dead connection, want a few seconds", took.Round(time.Second))
	}
}

func TestHealthCheckedConfig(t *testing.T) {
	cfg, err := HealthChecked(env.Config, DefaultHealth)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := cfg.Transport.(*http.Transport)
	if !ok || tr.HTTP2 == nil || tr.HTTP2.SendPingTimeout != DefaultHealth.ReadIdle || tr.HTTP2.PingTimeout != DefaultHealth.PingTimeout {
		t.Fatalf("transport = %#v, want an HTTP/2 health check of %+v", cfg.Transport, DefaultHealth)
	}
	if cfg.Timeout != 0 {
		t.Errorf("overall timeout %s would cut every watch", cfg.Timeout)
	}
	// The client certificate and CA moved into the transport: a request works.
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /readyz: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}

	bad := []struct {
		name string
		mod  func(*rest.Config)
		h    Health
	}{
		{"custom transport", func(c *rest.Config) { c.Transport = http.DefaultTransport }, DefaultHealth},
		{"exec plugin", func(c *rest.Config) { c.ExecProvider = &clientcmdapi.ExecConfig{Command: "credential-plugin"} }, DefaultHealth},
		{"zero ping timeout", func(*rest.Config) {}, Health{ReadIdle: time.Second}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			c := rest.CopyConfig(env.Config)
			tt.mod(c)
			if _, err := HealthChecked(c, tt.h); err == nil {
				t.Error("accepted")
			}
		})
	}
}
