package poolsync

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
)

// Health bounds how long the agent can go on using a dead API server
// connection. client-go's own HTTP/2 health check pings a connection only
// after 30 s without a frame and drops it 15 s later, so a connection that
// died silently (a middlebox, NAT or conntrack dropping it, a peer that
// vanished without a reset) stalls every watch and request multiplexed on it
// for up to 45 s: pod starts wait for IPs the operator already published.
type Health struct {
	// ReadIdle is how long a connection may deliver nothing before the agent
	// sends an HTTP/2 PING on it. Watches are quiet on an idle node; a PING
	// every few seconds is a few dozen bytes.
	ReadIdle time.Duration
	// PingTimeout is how long the agent waits for the PING's answer (or for
	// a write to make progress) before it closes the connection, failing its
	// streams so that the informers re-list and re-watch on a new one.
	PingTimeout time.Duration
}

// DefaultHealth notices a dead connection within 6 s.
var DefaultHealth = Health{ReadIdle: 3 * time.Second, PingTimeout: 3 * time.Second}

// HealthChecked returns a copy of base with a transport whose HTTP/2 health
// check and TCP keepalive follow h. It sets no overall request timeout,
// which would cut every watch: the Syncer bounds its own requests. base must
// not carry a custom transport, nor an exec or auth-provider plugin whose
// client certificates only client-go's own transport can present.
func HealthChecked(base *rest.Config, h Health) (*rest.Config, error) {
	switch {
	case base.Transport != nil:
		return nil, errors.New("build the api server transport: the configuration already has a custom transport")
	case base.ExecProvider != nil || base.AuthProvider != nil:
		return nil, errors.New("build the api server transport: exec and auth-provider credential plugins are not supported; use a token or client certificate")
	case h.ReadIdle <= 0 || h.PingTimeout <= 0:
		return nil, fmt.Errorf("build the api server transport: health timeouts must be positive, got %+v", h)
	}
	tlsCfg, err := rest.TLSConfigFor(base)
	if err != nil {
		return nil, fmt.Errorf("build the api server tls configuration: %w", err)
	}
	dial := base.Dial
	if dial == nil {
		// KeepAlive covers a peer that vanished while nothing is multiplexed
		// on the connection; the PING covers one whose kernel still answers.
		dial = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: h.ReadIdle}).DialContext
	}
	proxy := base.Proxy
	if proxy == nil {
		proxy = utilnet.NewProxierWithNoProxyCIDR(http.ProxyFromEnvironment)
	}
	t := &http.Transport{
		Proxy:               proxy,
		DialContext:         dial,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 25,
		ForceAttemptHTTP2:   tlsCfg != nil,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout:  h.ReadIdle,
			PingTimeout:      h.PingTimeout,
			WriteByteTimeout: h.ReadIdle + h.PingTimeout,
		},
	}
	cfg := rest.CopyConfig(base)
	// The TLS settings now live in the transport; client-go refuses a
	// custom transport next to TLS options.
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	cfg.Transport = t
	cfg.Dial, cfg.Proxy = nil, nil
	return cfg, nil
}
