// Package metrics defines the node agent's Prometheus metrics. Every method
// is safe on a nil *Metrics, so components work without metrics in tests.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is the pool's state at scrape time.
type Snapshot struct {
	// PoolIPs is the number of entries in status.ips.
	PoolIPs int
	// Usable is PoolIPs less those in ipsNotInUse or being released.
	Usable int
	// Allocated is the number of IPs held by attachments.
	Allocated int
	// Free is Usable less Allocated.
	Free int
	// Requested is the last spec.requestedIPCount the agent computed.
	Requested int
	// Pending is the number of allocations waiting for an IP.
	Pending int
	// HeldOutsidePool is the number of IPs held by attachments that the
	// pool no longer lists: someone removed them from the NIC while in use
	// (an administrator, with a pre-provisioned pool). The containers keep
	// them, but traffic to them no longer arrives.
	HeldOutsidePool int
}

// GC release reasons.
const (
	ReasonPodGone = "pod_gone"
	ReasonCNIGC   = "cni_gc"
	ReasonStartup = "startup_reconcile"
)

// Metrics holds the agent's counters and histograms.
type Metrics struct {
	allocLatency *prometheus.HistogramVec
	waits        prometheus.Counter
	timeouts     prometheus.Counter
	gcReleases   *prometheus.CounterVec
	poolReleases prometheus.Counter
}

// New registers the agent's metrics with reg; snapshot is read at every scrape.
func New(reg prometheus.Registerer, snapshot func() Snapshot) *Metrics {
	m := &Metrics{
		allocLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nicpool_agent_allocation_duration_seconds",
			Help:    "Time to answer an allocation, including any wait for the pool to grow.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"result"}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nicpool_agent_allocation_waits_total",
			Help: "Allocations that had to wait for the pool to grow.",
		}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nicpool_agent_allocation_timeouts_total",
			Help: "Allocations that gave up waiting and answered try-again-later.",
		}),
		gcReleases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nicpool_agent_gc_releases_total",
			Help: "Allocations released by garbage collection, by reason.",
		}, []string{"reason"}),
		poolReleases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nicpool_agent_pool_releases_total",
			Help: "Idle IPs offered back to the operator through spec.ipsNotInUse.",
		}),
	}
	gauge := func(name, help string, f func(Snapshot) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(f(snapshot())) })
	}
	reg.MustRegister(m.allocLatency, m.waits, m.timeouts, m.gcReleases, m.poolReleases,
		gauge("nicpool_agent_pool_ips", "IPs in the pool's status.ips.", func(s Snapshot) int { return s.PoolIPs }),
		gauge("nicpool_agent_usable_ips", "IPs the agent may hand out (status.ips less ipsNotInUse).", func(s Snapshot) int { return s.Usable }),
		gauge("nicpool_agent_allocated_ips", "IPs held by pods.", func(s Snapshot) int { return s.Allocated }),
		gauge("nicpool_agent_free_ips", "Usable IPs not held by any pod.", func(s Snapshot) int { return s.Free }),
		gauge("nicpool_agent_requested_ips", "The requestedIPCount the agent last computed.", func(s Snapshot) int { return s.Requested }),
		gauge("nicpool_agent_pending_allocations", "Allocations waiting for an IP.", func(s Snapshot) int { return s.Pending }),
		gauge("nicpool_agent_held_ips_outside_pool", "IPs held by pods or containers that the pool no longer lists (removed from the NIC while in use).", func(s Snapshot) int { return s.HeldOutsidePool }),
	)
	return m
}

// ObserveAllocation records how long an allocation took and whether it got an IP.
func (m *Metrics) ObserveAllocation(d time.Duration, ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "error"
	}
	m.allocLatency.WithLabelValues(result).Observe(d.Seconds())
}

// Waited counts an allocation that had to wait.
func (m *Metrics) Waited() {
	if m != nil {
		m.waits.Inc()
	}
}

// TimedOut counts an allocation that gave up waiting.
func (m *Metrics) TimedOut() {
	if m != nil {
		m.timeouts.Inc()
	}
}

// GCReleased counts n allocations released by GC for reason.
func (m *Metrics) GCReleased(reason string, n int) {
	if m != nil && n > 0 {
		m.gcReleases.WithLabelValues(reason).Add(float64(n))
	}
}

// PoolReleased counts n IPs offered back to the operator.
func (m *Metrics) PoolReleased(n int) {
	if m != nil && n > 0 {
		m.poolReleases.Add(float64(n))
	}
}
