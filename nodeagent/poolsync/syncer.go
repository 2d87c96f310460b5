package poolsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/poolsource"
)

// Defaults of Config.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultResync   = 10 * time.Second
	// DefaultMaxSettle is a little more than the scheduler takes to bind a
	// burst of 250 pods to one node on a loaded control plane (1.1 to 2.5 s
	// measured in the testbed), and less than one ARM NIC PUT.
	DefaultMaxSettle = 3 * time.Second
	// DefaultRequestTimeout bounds one spec patch: on a connection that died
	// after the patch was sent, it fails and is retried (on a new connection
	// once the transport's health check dropped the dead one) instead of
	// waiting for the kernel to give up.
	DefaultRequestTimeout = 15 * time.Second
)

// Config configures a Syncer.
type Config struct {
	// NodeName is the node, and the name of its NodeIPPool.
	NodeName string
	// Cache is the cache from NewCache; the Syncer reads the pool from it.
	Cache cache.Cache
	// Client writes the pool's spec (a direct client, not cached).
	Client client.Client
	// Allocator receives the observed pool and plans the spec.
	Allocator *ipam.Allocator
	// Debounce gathers bursts of demand changes into one write.
	Debounce time.Duration
	// MaxSettle bounds how long a write waits, Debounce at a time, while
	// the demand keeps growing (a burst being bound to the node).
	MaxSettle time.Duration
	// Resync replans periodically, so idle IPs go back once their cooldown
	// has passed even when nothing else happens.
	Resync time.Duration
	// RequestTimeout bounds each write to the API server.
	RequestTimeout time.Duration
	// Log receives progress.
	Log logr.Logger
}

// Syncer keeps the allocator and the NodeIPPool in step: it is the
// poolsource.Source of a node in a Kubernetes cluster.
type Syncer struct {
	cfg     Config
	trigger chan struct{}
	// observed is the pool Observe last read, the base of Request's patch.
	observed *nicpoolv1.NodeIPPool
}

var _ poolsource.Source = (*Syncer)(nil)

// New returns a Syncer.
func New(cfg Config) *Syncer {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.MaxSettle <= 0 {
		cfg.MaxSettle = DefaultMaxSettle
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	return &Syncer{cfg: cfg, trigger: make(chan struct{}, 1)}
}

func (s *Syncer) kick() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run watches the pool and writes the spec until ctx ends. The cache must be
// started by the caller; Run waits for it to sync.
func (s *Syncer) Run(ctx context.Context) error {
	inf, err := s.cfg.Cache.GetInformer(ctx, &nicpoolv1.NodeIPPool{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("get NodeIPPool informer: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.kick() },
		UpdateFunc: func(any, any) { s.kick() },
		DeleteFunc: func(any) { s.kick() },
	})
	if err != nil {
		return fmt.Errorf("watch NodeIPPool %s: %w", s.cfg.NodeName, err)
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	// Pods bound to the node are demand before their ADDs arrive.
	podInf, err := s.cfg.Cache.GetInformer(ctx, &corev1.Pod{}, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("get pod informer: %w", err)
	}
	podReg, err := podInf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.kick() },
		UpdateFunc: func(any, any) { s.kick() },
		DeleteFunc: func(any) { s.kick() },
	})
	if err != nil {
		return fmt.Errorf("watch pods on node %s: %w", s.cfg.NodeName, err)
	}
	defer func() { _ = podInf.RemoveEventHandler(podReg) }()
	if !s.cfg.Cache.WaitForCacheSync(ctx) {
		if ctx.Err() != nil {
			return nil // shut down before the first sync
		}
		return fmt.Errorf("wait for the NodeIPPool and pod caches to sync: %w", ctx.Err())
	}
	return poolsource.Run(ctx, s, poolsource.Config{
		Allocator: s.cfg.Allocator, Events: s.trigger, Debounce: s.cfg.Debounce, Resync: s.cfg.Resync,
		Log: s.cfg.Log.WithValues("node", s.cfg.NodeName), Name: "NodeIPPool",
		// Let the rest of a burst arrive so it is asked for in one write.
		Settle: func(ctx context.Context) bool {
			return settle(s.demand(ctx), func() int { return s.demand(ctx) }, func() bool { return sleepCtx(ctx, s.cfg.Debounce) }, s.maxWaits(), settleQuietWaits)
		},
	})
}

// settle waits (wait) while the node's demand keeps growing: it returns
// once demand did not grow over quiet waits in a row, or after maxWaits
// waits. A burst being bound to the node (the scheduler binds 250 pods in a
// second or two, with pauses when the API server is busy) is then asked for
// in one spec write rather than one per debounce, and the operator's NIC
// write after it carries the whole burst; a single new pod costs quiet
// waits. It returns false when wait does (the context ended).
func settle(last int, demand func() int, wait func() bool, maxWaits, quiet int) bool {
	still := 0
	for range max(maxWaits, 1) {
		if !wait() {
			return false
		}
		d := demand()
		if d > last {
			last, still = d, 0
			continue
		}
		if still++; still >= max(quiet, 1) {
			break
		}
	}
	return true
}

// settleQuietWaits is how many debounces without growth end a burst: the
// API server, busy creating a burst's pods, pauses for more than one
// (a cold burst took 3 NIC writes under load with one).
const settleQuietWaits = 3

// maxWaits is how many debounces settle may wait: MaxSettle's worth.
func (s *Syncer) maxWaits() int { return max(int(s.cfg.MaxSettle/s.cfg.Debounce), 1) }

// demand is what settle watches: the pods bound to the node that need an
// IP plus the allocations waiting for one (both grow during a burst).
func (s *Syncer) demand(ctx context.Context) int {
	n, err := PodsNeedingIPs(ctx, s.cfg.Cache)
	if err != nil {
		n = 0 // SyncOnce reports the error
	}
	return n + s.cfg.Allocator.Snapshot().Pending
}

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// SyncOnce reads the pool from the cache, hands it to the allocator and, if
// the allocator's plan differs from the spec, patches the spec with the
// pool's resourceVersion as a precondition. A conflict is not an error: the
// pool is read again at once.
func (s *Syncer) SyncOnce(ctx context.Context) error {
	err := poolsource.SyncOnce(ctx, s, s.cfg.Allocator)
	if errors.Is(err, poolsource.ErrStale) {
		s.kick()
		return nil
	}
	return err
}

// ReadOnly is false: the agent writes the pool's spec.
func (s *Syncer) ReadOnly() bool { return false }

// Observe reads the pool from the cache. A missing pool, or one the
// operator is taking down, hands nothing out.
func (s *Syncer) Observe(ctx context.Context) (ipam.PoolState, error) {
	s.observed = nil
	var np nicpoolv1.NodeIPPool
	err := s.cfg.Cache.Get(ctx, client.ObjectKey{Name: s.cfg.NodeName}, &np)
	if apierrors.IsNotFound(err) {
		return ipam.PoolState{Found: false}, nil
	}
	if err != nil {
		return ipam.PoolState{}, fmt.Errorf("read NodeIPPool %s from the cache: %w", s.cfg.NodeName, err)
	}
	if !np.DeletionTimestamp.IsZero() {
		// The operator is taking the pool down; hand nothing new out of it.
		return ipam.PoolState{Found: false}, nil
	}
	// Pods bound to the node that need an IP are demand before their
	// ADDs arrive (the allocator's PlanSpec counts them).
	bound, err := PodsNeedingIPs(ctx, s.cfg.Cache)
	if err != nil {
		return ipam.PoolState{}, err
	}
	s.cfg.Allocator.SetBoundPods(bound)
	s.observed = &np
	return StateOf(&np), nil
}

// Request patches the spec of the pool Observe read, unless it already
// carries plan.
func (s *Syncer) Request(ctx context.Context, _ ipam.PoolState, plan ipam.SpecPlan) error {
	np := s.observed
	if np == nil || specMatches(np, plan) {
		return nil
	}
	base := np.DeepCopy()
	np.Spec.RequestedIPCount = int32(plan.Requested)
	np.Spec.IPsNotInUse = toAddresses(plan.NotInUse)
	pctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	err := s.cfg.Client.Patch(pctx, np, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err):
		return poolsource.ErrStale
	case err != nil:
		return fmt.Errorf("patch spec of NodeIPPool %s (requestedIPCount %d, %d ipsNotInUse): %w", s.cfg.NodeName, plan.Requested, len(plan.NotInUse), err)
	}
	s.cfg.Log.V(1).Info("Updated the pool's spec", "node", s.cfg.NodeName, "requestedIPCount", plan.Requested, "ipsNotInUse", len(plan.NotInUse))
	return nil
}

// StateOf converts a NodeIPPool to what the allocator needs.
func StateOf(np *nicpoolv1.NodeIPPool) ipam.PoolState {
	st := ipam.PoolState{
		Found:      true,
		Requested:  int(np.Spec.RequestedIPCount),
		SubnetCIDR: string(np.Status.SubnetCIDR),
		PrimaryIP:  string(np.Status.PrimaryIP),
	}
	if v := np.Status.FairShareIPCount; v != nil {
		share := int(*v)
		st.FairShare = &share
	}
	for _, cidr := range np.Status.VNetAddressSpace {
		st.VNetAddressSpace = append(st.VNetAddressSpace, string(cidr))
	}
	for _, e := range np.Status.SubnetServiceEndpoints {
		st.ServiceEndpoints = append(st.ServiceEndpoints, e.Service)
	}
	for _, ip := range np.Status.IPs {
		st.IPs = append(st.IPs, string(ip.IP))
	}
	for _, ip := range np.Spec.IPsNotInUse {
		st.NotInUse = append(st.NotInUse, string(ip))
	}
	st.AttachBlocked, st.OwnPublicIP = attachState(np)
	return st
}

// attachState returns the IPs held back for their attachments (an entry in
// spec.attachments, or something attached in status.attachments) and the
// IPs whose configuration carries a public IP.
func attachState(np *nicpoolv1.NodeIPPool) (blocked, ownPublicIP []string) {
	for _, a := range np.Spec.Attachments {
		blocked = append(blocked, string(a.IP))
	}
	for _, a := range np.Status.Attachments {
		if a.Attached() {
			blocked = append(blocked, string(a.IP))
		}
		if a.PublicIPAddress != "" {
			ownPublicIP = append(ownPublicIP, string(a.IP))
		}
	}
	return blocked, ownPublicIP
}

func specMatches(np *nicpoolv1.NodeIPPool, plan ipam.SpecPlan) bool {
	if int(np.Spec.RequestedIPCount) != plan.Requested {
		return false
	}
	cur := make([]string, 0, len(np.Spec.IPsNotInUse))
	for _, ip := range np.Spec.IPsNotInUse {
		cur = append(cur, string(ip))
	}
	slices.Sort(cur)
	return slices.Equal(cur, plan.NotInUse)
}

func toAddresses(ips []string) []nicpoolv1.IPv4Address {
	if len(ips) == 0 {
		return nil
	}
	out := make([]nicpoolv1.IPv4Address, len(ips))
	for i, ip := range ips {
		out[i] = nicpoolv1.IPv4Address(ip)
	}
	return out
}
