package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/nodeagent/armpool"
	"github.com/nicpool/nicpool/nodeagent/gc"
	"github.com/nicpool/nicpool/nodeagent/ipam"
	"github.com/nicpool/nicpool/nodeagent/metrics"
	"github.com/nicpool/nicpool/nodeagent/podattach"
	"github.com/nicpool/nicpool/nodeagent/poolsync"
	"github.com/nicpool/nicpool/nodeagent/server"
	"github.com/nicpool/nicpool/nodeagent/store"
)

// SNAT programs the node's masquerade rules (snat.Manager).
type SNAT interface {
	// Sync converges the rules and ip_forward; idempotent.
	Sync(ctx context.Context) error
}

// Installer places and withdraws the CNI binary and conflist (install.Installer).
type Installer interface {
	// Install writes the binary and conflist; idempotent and atomic.
	Install() error
	// Withdraw removes the conflist so the node stops being network-ready.
	Withdraw() error
}

// Deps are the agent's collaborators that cmd builds.
type Deps struct {
	// RestConfig reaches the API server (pool source nodeippool).
	RestConfig *rest.Config
	// NICs reaches ARM (pool source arm).
	NICs armpool.NICAPI
	// NewSNAT builds SNAT for the node's primary IP and non-masquerade
	// CIDRs; traffic from the ownPublicIP pod IPs (their IP configurations
	// carry a public IP) is never SNATed.
	NewSNAT func(primaryIP string, nonMasq, ownPublicIP []string) (SNAT, error)
	// Installer installs the CNI plugin.
	Installer Installer
	// Registry receives the metrics.
	Registry *prometheus.Registry
	// Log is the root logger.
	Log logr.Logger
}

// Run runs the agent until ctx ends: restore the store, sync the pool,
// reconcile allocations, serve the plugin, GC, SNAT and install.
func Run(ctx context.Context, o Options, d Deps) (err error) {
	log := d.Log
	st, err := openStore(o, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close allocation store %s: %w", o.StateDir, cerr))
		}
	}()
	var alloc *ipam.Allocator
	m := metrics.New(d.Registry, func() metrics.Snapshot { return alloc.Snapshot() })
	alloc = ipam.New(st, ipam.Config{Policy: o.Policy, AllocTimeout: o.AllocTimeout, Metrics: m})

	// With the nodeippool source, an allocation makes the pod attacher read
	// the pod's attachment annotations; it exists once the caches synced.
	var attacher atomic.Pointer[podattach.Attacher]
	veths := gc.HostVeths{Log: log.WithName("veths")}
	srv := server.New(alloc, server.Config{SocketPath: o.SocketPath, GCMinAge: o.CNIGCMinAge, Metrics: m, Log: log.WithName("server"),
		Veths: veths,
		OnAllocated: func() {
			if a := attacher.Load(); a != nil {
				a.Kick()
			}
		}})
	g, ctx := errgroup.WithContext(ctx)
	// Probes are answered from the start: live while caches sync, ready once
	// the socket is served and the pool was synced.
	g.Go(func() error { return server.ServeTCP(ctx, o.HealthAddr, server.HealthHandler(srv, alloc.Synced)) })
	var (
		pods     gc.PodLister
		poolLoop func(context.Context) error
	)
	if o.PoolSource == PoolSourceNodeIPPool {
		pods, poolLoop, err = kubernetesPool(ctx, g, o, d, alloc, &attacher)
	} else {
		pods, poolLoop, err = standalonePool(o, d, alloc)
	}
	if err != nil {
		return err
	}
	host, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer host.Close()
	collector := gc.New(alloc, gc.Config{
		Grace: o.GCGrace, Metrics: m, Log: log.WithName("gc"), LinkExists: gc.HostLinks(host),
		Pods: pods,
	})
	// DELs answered by an agent killed before it deleted their veths.
	if n, err := veths.SweepRetired(alloc); err != nil {
		log.Error(err, "Failed to finish the DELs of retired veths; their IPs stay held")
	} else if n > 0 {
		log.Info("Finished the DELs of retired veths", "count", n)
	}
	if err := collector.ReconcileAtStart(ctx); err != nil {
		log.Error(err, "Failed to reconcile allocations with the host; continuing with the stored record")
	}
	g.Go(func() error { return poolLoop(ctx) })
	g.Go(func() error { return srv.Run(ctx) })
	g.Go(func() error { collector.Run(ctx, o.GCGrace/2); return nil })
	g.Go(func() error { return server.ServeTCP(ctx, o.MetricsAddr, server.MetricsHandler(d.Registry)) })
	g.Go(func() error { snatLoop(ctx, o, d, alloc, log.WithName("snat")); return nil })
	g.Go(func() error { installLoop(ctx, d.Installer, alloc, log.WithName("install")); return nil })
	log.Info("Started the node agent", "node", o.NodeName, "poolSource", o.PoolSource, "socket", o.SocketPath, "allocations", len(st.List()))
	if err := g.Wait(); err != nil {
		return fmt.Errorf("run node agent %s: %w", o.NodeName, err)
	}
	return nil
}

// kubernetesPool connects the agent to the API server: the node's
// NodeIPPool is its pool and the pods bound to the node are what GC keeps.
// The cache runs in g.
func kubernetesPool(ctx context.Context, g *errgroup.Group, o Options, d Deps, alloc *ipam.Allocator, attacher *atomic.Pointer[podattach.Attacher]) (gc.PodLister, func(context.Context) error, error) {
	if d.RestConfig == nil {
		return nil, nil, errors.New("pool source nodeippool needs the api server, and no configuration for it was given")
	}
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), nicpoolv1.AddToScheme(scheme)); err != nil {
		return nil, nil, fmt.Errorf("build scheme: %w", err)
	}
	c, err := poolsync.NewCache(ctx, d.RestConfig, scheme, o.NodeName)
	if err != nil {
		return nil, nil, err
	}
	direct, err := client.New(d.RestConfig, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, fmt.Errorf("build api client: %w", err)
	}
	g.Go(func() error { return c.Start(ctx) })
	if !c.WaitForCacheSync(ctx) {
		return nil, nil, fmt.Errorf("sync caches of node %s: %w", o.NodeName, errors.Join(ctx.Err(), g.Wait()))
	}
	syncer := poolsync.New(poolsync.Config{NodeName: o.NodeName, Cache: c, Client: direct, Allocator: alloc, Log: d.Log.WithName("poolsync")})
	recorder, stopEvents, err := eventRecorder(d.RestConfig, scheme)
	if err != nil {
		return nil, nil, err
	}
	att := podattach.New(podattach.Config{NodeName: o.NodeName, Cache: c, Client: direct, Allocator: alloc,
		Recorder: recorder, Log: d.Log.WithName("podattach")})
	attacher.Store(att)
	pods := func(ctx context.Context) ([]gc.Pod, error) { return podsOnNode(ctx, c) }
	run := func(ctx context.Context) error {
		defer stopEvents()
		var pg errgroup.Group
		pg.Go(func() error { return syncer.Run(ctx) })
		pg.Go(func() error { return att.Run(ctx) })
		return pg.Wait()
	}
	return pods, run, nil
}

// openStore opens the state directory. When the record is corrupt and
// --reset-state is set, it moves the record aside and rebuilds it from the
// host's pod routes; a healthy record is never reset, so leaving the flag on
// is harmless.
func openStore(o Options, log logr.Logger) (*store.DiskStore, error) {
	st, err := store.Open(o.StateDir)
	var corrupt *store.CorruptError
	if err == nil || !errors.As(err, &corrupt) || !o.ResetState {
		return st, err
	}
	aside, err := store.ResetState(o.StateDir, time.Now())
	if err != nil {
		return nil, err
	}
	log.Info("Moved the corrupt allocation record aside", "path", aside, "problem", corrupt.Err.Error())
	if st, err = store.Open(o.StateDir); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink to rebuild the allocation record: %w", err)
	}
	defer h.Close()
	n, err := gc.RecoverFromHost(h, st, time.Now())
	if err != nil {
		return nil, fmt.Errorf("rebuild the allocation record from host routes: %w", err)
	}
	log.Info("Rebuilt the allocation record from host routes", "allocations", n)
	return st, nil
}

// podsOnNode lists the pods the cache holds (those bound to this node) with
// their UIDs, for pod GC.
func podsOnNode(ctx context.Context, r client.Reader) ([]gc.Pod, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods); err != nil {
		return nil, fmt.Errorf("list pods on the node: %w", err)
	}
	out := make([]gc.Pod, 0, len(pods.Items))
	for _, p := range pods.Items {
		out = append(out, gc.Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)})
	}
	return out, nil
}

// eventRecorder returns a recorder of Events (events.k8s.io) for pods, and a
// function that stops it.
func eventRecorder(cfg *rest.Config, scheme *runtime.Scheme) (podattach.EventRecorder, func(), error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("build events client: %w", err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	stop := make(chan struct{})
	b.StartRecordingToSink(stop)
	return b.NewRecorder(scheme, "nicpool-agent"), func() { close(stop); b.Shutdown() }, nil
}
