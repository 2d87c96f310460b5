package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
)

// TestMetrics scales two nodes up (through one failed NIC read) and deletes
// one, and checks what the metrics registry (what /metrics serves) says
// against the pools' status, the ledger, the NICs and the ARM calls the
// emulator answered.
func TestMetrics(t *testing.T) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.7.0.0/16", "10.7.0.0/24", 2)
	renameVNet(topo, "vnet-metrics") // a VNet label no other test writes
	s := startSim(t, topo)
	// One failed read, which the SDK retries, is counted under its own code.
	s.srv.FailNext(armsim.OpGetNIC, 1, http.StatusInternalServerError, "")
	forgetPoolConditions()
	armBefore := gather(t, "nicpool_arm_requests_total")
	armLatencyBefore := gather(t, "nicpool_arm_request_duration_seconds")
	reconcileBefore := gather(t, "nicpool_reconcile_duration_seconds")
	opts := testOptions()
	opts.PerVNetLimit = 1000
	op := startOperator(t, s, opts, nil)
	want := map[string]int{"metrics-0": 20, "metrics-1": 7}
	for i, name := range []string{"metrics-0", "metrics-1"} {
		createNode(t, name, providerID(i))
		setRequestWhenExists(t, name, want[name])
	}
	for i, name := range []string{"metrics-0", "metrics-1"} {
		eventually(t, 30*time.Second, func() string { return statusMatchesNIC(s, lookPool(name), nicID(i), want[name]) })
	}
	vnet := getPool(t, "metrics-0").Status.VNetID
	eventually(t, 10*time.Second, func() string { return metricsMatch(t, s, op, vnet, want, opts.PerVNetLimit) })

	deleteNodeAndPool(t, "metrics-1", false)
	eventually(t, 30*time.Second, func() string {
		if err := env.Client.Get(context.Background(), clientKey("metrics-1"), &nicpoolv1.NodeIPPool{}); err == nil {
			return "pool metrics-1 still exists"
		}
		return ""
	})
	delete(want, "metrics-1")
	eventually(t, 10*time.Second, func() string { return metricsMatch(t, s, op, vnet, want, opts.PerVNetLimit) })
	if v, ok := gather(t, "nicpool_node_ips_allocated")["node=metrics-1"]; ok {
		t.Errorf("nicpool_node_ips_allocated{node=metrics-1} = %v after the pool was deleted, want no series", v)
	}

	// Stopped, the operator makes no more calls: every call the emulator
	// answered must have been counted, under its operation and code.
	op.stop()
	eventually(t, 5*time.Second, func() string { return armMetricsMatch(t, s, armBefore, armLatencyBefore) })
	reconciles := gather(t, "nicpool_reconcile_duration_seconds")
	if got := reconciles["result=success"] - reconcileBefore["result=success"]; got == 0 {
		t.Errorf("nicpool_reconcile_duration_seconds{result=success} has no new samples (all: %v)", reconciles)
	}
}

// metricsMatch reports "" when the per-node, per-VNet and pools-by-condition
// metrics agree with the pools in want, the ledger and the NICs.
func metricsMatch(t *testing.T, s *sim, op *operator, vnet string, want map[string]int, limit int) string {
	nodes := gather(t, "nicpool_node_ips_allocated")
	total := 0
	for name, n := range want {
		total += n
		status := lookPool(name).Status.AllocatedIPCount
		if got := nodes["node="+name]; got != float64(status) || got != float64(n) {
			return fmt.Sprintf("nicpool_node_ips_allocated{node=%s} = %v, status says %d, want %d", name, got, status, n)
		}
	}
	onNICs := 0
	for i := range 2 {
		owned, _ := nicOwned(s, nicID(i))
		onNICs += len(owned)
	}
	used, held := op.ledger.Used(vnet)
	if used != total || held != total || onNICs != total {
		return fmt.Sprintf("ledger used %d held %d, NICs hold %d, want %d", used, held, onNICs, total)
	}
	key := "vnet=" + vnet
	if got := gather(t, "nicpool_vnet_quota_used")[key]; got != float64(used) {
		return fmt.Sprintf("nicpool_vnet_quota_used = %v, ledger says %d", got, used)
	}
	if got := gather(t, "nicpool_vnet_ips_allocated")[key]; got != float64(onNICs) {
		return fmt.Sprintf("nicpool_vnet_ips_allocated = %v, NICs hold %d", got, onNICs)
	}
	if got := gather(t, "nicpool_vnet_quota_limit")[key]; got != float64(limit) {
		return fmt.Sprintf("nicpool_vnet_quota_limit = %v, want %d", got, limit)
	}
	inAPI, err := countReadyPools()
	if err != nil {
		return err.Error()
	}
	pools := gather(t, "nicpool_pools")
	for _, st := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse} {
		if got := sumSeries(pools, "condition=Ready", "status="+string(st)); got != float64(inAPI[st]) {
			return fmt.Sprintf("nicpool_pools{condition=Ready,status=%s} = %v, %d pools say so in the API (all: %v)", st, got, inAPI[st], pools)
		}
	}
	if inAPI[metav1.ConditionTrue] < len(want) {
		return fmt.Sprintf("%d pools are Ready, want at least %d", inAPI[metav1.ConditionTrue], len(want))
	}
	return ""
}

// armMetricsMatch reports "" when the ARM call counters and latency
// histogram rose, since before, by the calls the emulator answered. (The
// emulator counts a call just after answering it, so callers poll.)
func armMetricsMatch(t *testing.T, s *sim, before, latencyBefore map[string]float64) string {
	calls := gather(t, "nicpool_arm_requests_total")
	latency := gather(t, "nicpool_arm_request_duration_seconds")
	stats := s.srv.Stats()
	if stats.Calls[armsim.OpGetNIC][http.StatusInternalServerError] == 0 {
		return "the emulator answered no GetNIC with 500: the injected fault was not exercised"
	}
	for _, op := range []armsim.Op{armsim.OpGetNIC, armsim.OpPutNIC} {
		if stats.Calls[op][http.StatusOK] == 0 {
			return fmt.Sprintf("the emulator answered no %s with 200: the test did not exercise it", op)
		}
		all := 0
		for code, n := range stats.Calls[op] {
			all += n
			key := fmt.Sprintf("code=%d,operation=%s", code, op)
			if got := calls[key] - before[key]; got != float64(n) {
				return fmt.Sprintf("nicpool_arm_requests_total{%s} rose by %v, the emulator answered %d", key, got, n)
			}
		}
		key := "operation=" + string(op)
		if got := sumSeries(calls, key) - sumSeries(before, key); got != float64(all) {
			return fmt.Sprintf("nicpool_arm_requests_total{%s} rose by %v over all codes, the emulator answered %d", key, got, all)
		}
		if got := latency[key] - latencyBefore[key]; got != float64(all) {
			return fmt.Sprintf("nicpool_arm_request_duration_seconds{%s} has %v new samples, want %d", key, got, all)
		}
	}
	return ""
}

// gather reads the metric family name from controller-runtime's registry and
// returns each series' value (a histogram's sample count) by its labels,
// written "name=value" in label-name order and joined with commas.
func gather(t *testing.T, name string) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := strings.Join(labels, ",")
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// sumSeries adds up the series that carry every one of the labels.
func sumSeries(series map[string]float64, labels ...string) float64 {
	sum := 0.0
	for key, v := range series {
		have := strings.Split(key, ",")
		if !slices.ContainsFunc(labels, func(l string) bool { return !slices.Contains(have, l) }) {
			sum += v
		}
	}
	return sum
}

// countReadyPools counts the pools by the status of their Ready condition.
func countReadyPools() (map[metav1.ConditionStatus]int, error) {
	var list nicpoolv1.NodeIPPoolList
	if err := env.Client.List(context.Background(), &list); err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	n := map[metav1.ConditionStatus]int{}
	for i := range list.Items {
		if st, _ := condition(&list.Items[i], nicpoolv1.ConditionReady); st != "" {
			n[st]++
		}
	}
	return n, nil
}

// forgetPoolConditions clears the pools-by-condition tracker of the pools
// earlier tests' operators left in it (a test operator may stop before it
// sees its pools go), so the gauge counts this test's pools only.
func forgetPoolConditions() {
	poolConditions.mu.Lock()
	names := make([]string, 0, len(poolConditions.pools))
	for name := range poolConditions.pools {
		names = append(names, name)
	}
	poolConditions.mu.Unlock()
	for _, name := range names {
		poolConditions.update(name, nil)
	}
}

// renameVNet renames topo's VNet (GenerateTopology's vnet-0).
func renameVNet(topo *armsim.Topology, name string) {
	topo.VNets[0].Name = name
	for i := range topo.NICs {
		topo.NICs[i].VNet = name
	}
}
