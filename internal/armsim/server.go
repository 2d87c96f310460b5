package armsim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// DefaultMaxIPConfigsPerNIC is Azure's limit of IP configurations on one NIC.
const DefaultMaxIPConfigsPerNIC = 256

// Options configures a Server.
type Options struct {
	// Topology is the initial state; required.
	Topology *Topology
	// Throttle configures ARM's per-subscription token buckets.
	Throttle ThrottleOptions
	// PutLatency is how long a NIC PUT stays provisioningState Updating before Succeeded.
	PutLatency time.Duration
	// MaxIPConfigsPerNIC caps IP configurations per NIC (default 256).
	MaxIPConfigsPerNIC int
	// Logf, when set, receives one line per request.
	Logf func(format string, args ...any)
}

// Server is the emulator: state, HTTP handler and optional HTTPS listener.
type Server struct {
	opts     Options
	sub      string
	location string
	certs    *certBundle

	mu        sync.Mutex
	rgs       map[string]string                 // lower-case name -> name as written
	vnets     map[string]*vnet                  // key: lower(rg/name)
	nics      map[string]*nic                   // key: lower(rg/name)
	netres    map[string]map[string]netResource // lower(type) -> lower(rg/name) -> resource
	pipRange  netip.Prefix                      // where public IPs are allocated
	pipUsed   map[netip.Addr]string             // public IP address -> public IP ID
	ops       map[string]*operation
	version   uint64
	changed   chan struct{}
	faults    faultState
	stats     statsState
	throttles map[string]*bucketPair   // key: lower(subscription)
	tokens    map[string]identityToken // managed identity tokens issued by IMDS
	closed    bool

	httpSrv *http.Server
	url     string
}

// New builds a Server from opts, loading the topology.
func New(opts Options) (*Server, error) {
	if opts.Topology == nil {
		return nil, errors.New("create armsim server: topology is required")
	}
	if err := opts.Topology.Validate(); err != nil {
		return nil, fmt.Errorf("create armsim server: %w", err)
	}
	if opts.MaxIPConfigsPerNIC <= 0 {
		opts.MaxIPConfigsPerNIC = DefaultMaxIPConfigsPerNIC
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	s := &Server{
		opts:      opts,
		sub:       opts.Topology.SubscriptionID,
		location:  opts.Topology.Location,
		rgs:       map[string]string{},
		vnets:     map[string]*vnet{},
		nics:      map[string]*nic{},
		netres:    map[string]map[string]netResource{},
		pipUsed:   map[netip.Addr]string{},
		ops:       map[string]*operation{},
		changed:   make(chan struct{}),
		faults:    newFaultState(),
		stats:     newStatsState(),
		throttles: map[string]*bucketPair{},
	}
	if s.location == "" {
		s.location = DefaultLocation
	}
	if err := s.load(opts.Topology); err != nil {
		return nil, fmt.Errorf("create armsim server: %w", err)
	}
	return s, nil
}

// Handler returns the ARM REST handler (plain HTTP; Start wraps it in TLS).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Start listens on addr (e.g. "127.0.0.1:0") and serves HTTPS with a freshly generated CA.
// ctx bounds only the listen; Close stops the server.
func (s *Server) Start(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("start armsim on %s: %w", addr, err)
	}
	certs, err := newCertBundle(host)
	if err != nil {
		return fmt.Errorf("start armsim on %s: %w", addr, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("start armsim on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{certs.cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.mu.Lock()
	s.certs, s.httpSrv = certs, srv
	s.url = "https://" + urlHost(ln.Addr().(*net.TCPAddr))
	s.mu.Unlock()
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opts.Logf("armsim: serve failed: %v", err)
		}
	}()
	return nil
}

func urlHost(a *net.TCPAddr) string {
	if a.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", a.Port)
	}
	return a.String()
}

// URL returns the base URL of the HTTPS listener, e.g. "https://127.0.0.1:PORT".
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// CACertPEM returns the PEM of the CA that signed the serving certificate (nil before Start).
func (s *Server) CACertPEM() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certs == nil {
		return nil
	}
	return append([]byte(nil), s.certs.caPEM...)
}

// SubscriptionID returns the subscription the emulator serves.
func (s *Server) SubscriptionID() string { return s.sub }

// Location returns the region reported for every resource.
func (s *Server) Location() string { return s.location }

// Close stops the listener and all pending operation timers.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, op := range s.ops {
		if op.timer != nil {
			op.timer.Stop()
		}
	}
	srv := s.httpSrv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	// Close, not Shutdown: clients leave half-used TLS connections behind that Shutdown
	// would wait seconds for, and an emulator owes in-flight requests nothing.
	if err := srv.Close(); err != nil {
		return fmt.Errorf("close armsim: %w", err)
	}
	return nil
}

// baseURL derives the externally visible base URL from a request (for nextLink and
// Azure-AsyncOperation), so Handler also works behind httptest servers.
func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// bumpLocked records a state change and wakes WaitForChange callers. Requires s.mu.
func (s *Server) bumpLocked() {
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

func key(rg, name string) string { return strings.ToLower(rg + "/" + name) }
