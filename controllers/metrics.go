package controllers

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

var (
	poolsByCondition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nicpool_pools", Help: "NodeIPPools by condition type, status and reason.",
	}, []string{"condition", "status", "reason"})
	nodeIPs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nicpool_node_ips_allocated", Help: "Secondary IPs on each node's NIC, as in its pool's status.",
	}, []string{"node"})
	vnetIPs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nicpool_vnet_ips_allocated", Help: "nicpool IPs on the NICs of each VNet, as the quota ledger knows them.",
	}, []string{"vnet"})
	vnetQuotaUsed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nicpool_vnet_quota_used", Help: "Quota of each VNet counted against its limit (held, reserved for writes in flight, or unverified).",
	}, []string{"vnet"})
	vnetQuotaLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nicpool_vnet_quota_limit", Help: "The per-VNet limit of nicpool IPs.",
	}, []string{"vnet"})
	armCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nicpool_arm_requests_total", Help: "ARM HTTP calls by operation and status code (0: no response).",
	}, []string{"operation", "code"})
	armLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "nicpool_arm_request_duration_seconds", Help: "ARM HTTP call latency by operation.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
	}, []string{"operation"})
	nodeIPsWithheld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nicpool_node_ips_withheld", Help: "nicpool IPs on each node's NIC left out of its pool's status because the write that added them is still running or ended Failed.",
	}, []string{"node"})
	nicFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nicpool_nic_failed_total", Help: "NICs found in provisioningState Failed, by how: on a read (left so earlier), or on a write whose operation ended Failed.",
	}, []string{"found_on"})
	nicRepairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nicpool_nic_repairs_total", Help: "Re-applications of a Failed NIC's configuration, by result (succeeded, failed).",
	}, []string{"result"})
	reconcileLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "nicpool_reconcile_duration_seconds", Help: "NodeIPPool reconcile latency by result.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
	}, []string{"result"})
)

func init() {
	metrics.Registry.MustRegister(poolsByCondition, nodeIPs, vnetIPs, vnetQuotaUsed, vnetQuotaLimit, armCalls, armLatency, reconcileLatency,
		nodeIPsWithheld, nicFailures, nicRepairs)
}

// ObserveARMCall records one ARM HTTP call; it is azure.Config.Observer.
func ObserveARMCall(op string, statusCode int, d time.Duration) {
	armCalls.WithLabelValues(op, strconv.Itoa(statusCode)).Inc()
	armLatency.WithLabelValues(op).Observe(d.Seconds())
}

// ledgerMetrics returns the ledger change hook that exports VNet usage.
func ledgerMetrics(limit int) func(vnet string, used, held int) {
	return func(vnet string, used, held int) {
		vnetQuotaUsed.WithLabelValues(vnet).Set(float64(used))
		vnetIPs.WithLabelValues(vnet).Set(float64(held))
		vnetQuotaLimit.WithLabelValues(vnet).Set(float64(limit))
	}
}

// conditionTracker counts pools by condition from each pool's last status.
type conditionTracker struct {
	mu    sync.Mutex
	pools map[string][]metav1.Condition
}

var poolConditions = &conditionTracker{pools: map[string][]metav1.Condition{}}

// update replaces pool's conditions (nil forgets the pool) and its IP gauge.
func (t *conditionTracker) update(pool string, status *nicpoolv1.NodeIPPoolStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.pools[pool] {
		poolsByCondition.WithLabelValues(c.Type, string(c.Status), c.Reason).Dec()
	}
	if status == nil {
		delete(t.pools, pool)
		nodeIPs.DeleteLabelValues(pool)
		nodeIPsWithheld.DeleteLabelValues(pool)
		return
	}
	conds := make([]metav1.Condition, len(status.Conditions))
	copy(conds, status.Conditions)
	t.pools[pool] = conds
	for _, c := range conds {
		poolsByCondition.WithLabelValues(c.Type, string(c.Status), c.Reason).Inc()
	}
	nodeIPs.WithLabelValues(pool).Set(float64(status.AllocatedIPCount))
}
