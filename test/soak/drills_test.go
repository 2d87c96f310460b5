package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nicpool/nicpool/test/e2e/testbed"
)

// drillKind is the fault a drill injects while pods come and go.
type drillKind string

const (
	drillChurn      drillKind = "churn"
	drillAgentKill  drillKind = "agent-kill-9"
	drillOpKill     drillKind = "operator-kill-9"
	drillPluginKill drillKind = "cni-plugin-kill-9"
	drillARMFaults  drillKind = "arm-faults"
	drillAPIRestart drillKind = "apiserver-restart"
)

type weightedKind struct {
	kind   drillKind
	weight int
}

// drillWeights sets how often each kind is drawn; an API server restart
// costs the most time, so it is the rarest.
var drillWeights = []weightedKind{
	{drillChurn, 2}, {drillAgentKill, 4}, {drillOpKill, 4}, {drillPluginKill, 4}, {drillARMFaults, 4}, {drillAPIRestart, 1},
}

// Soak sizes: pods live across the VMs; the limits are tight enough that
// the VNet limit binds now and then, loose enough that every pod fits.
const (
	minPods    = 6
	maxPods    = 36
	vnetLimit  = 60
	perVMLimit = 40
	armFaultP  = 0.2
	startLimit = 120 * time.Second // a pod that cannot start within this is a failure
	settleMax  = 120 * time.Second // the audit must come clean within this after the drill
)

// soak holds the running state: the testbed, the live pods and the tallies.
type soak struct {
	tb      *testbed.Testbed
	rnd     *rand.Rand
	live    []*testbed.Pod
	nextPod int
	rep     *report
	kinds   []string // drill kinds to draw from; empty: all
	logf    func(format string, args ...any)
}

func (s *soak) pickKind() drillKind {
	total := 0
	for _, w := range drillWeights {
		if s.allowed(w.kind) {
			total += w.weight
		}
	}
	n := s.rnd.IntN(total)
	for _, w := range drillWeights {
		if !s.allowed(w.kind) {
			continue
		}
		if n < w.weight {
			return w.kind
		}
		n -= w.weight
	}
	return drillChurn
}

// allowed reports whether -soak.kinds lets kind run.
func (s *soak) allowed(kind drillKind) bool {
	return len(s.kinds) == 0 || slices.Contains(s.kinds, string(kind))
}

// drillResult is one drill's outcome for the report.
type drillResult struct {
	n          int
	kind       drillKind
	note       string
	started    int
	deleted    int
	withFaults bool
	settle     time.Duration
	settled    bool
	last       findings
	unsafe     []string // doubles and misplaced pods seen at any audit
	errs       []error
	problem    string // set by report.add for a drill that was not clean
}

// runDrill churns pods while injecting the drill's fault, heals, and audits
// until the system has settled.
func (s *soak) runDrill(ctx context.Context, n int, kind drillKind) drillResult {
	r := drillResult{n: n, kind: kind}
	vm := s.tb.VMs[s.rnd.IntN(len(s.tb.VMs))]
	// A burst concentrated on one VM outgrows its warm pool, so the agent
	// asks for more and the operator writes the NIC while the fault hits.
	adds := 4 + s.rnd.IntN(8)
	if kind == drillARMFaults {
		adds += 4 // more growth, more NIC writes to fail
	}
	adds = min(adds, maxPods-len(s.live))
	dels := 0
	if len(s.live) > minPods {
		dels = s.rnd.IntN(min(len(s.live)-minPods, 8) + 1)
	}
	r.withFaults = kind == drillARMFaults || s.rnd.IntN(4) == 0
	if r.withFaults {
		kinds := testbed.DefaultARMFaults
		if *flagFailed {
			kinds = append(kinds[:len(kinds):len(kinds)], testbed.FaultOperationFailed)
		}
		s.tb.Faults.Set(armFaultP, kinds...)
	}
	var kills int
	if kind == drillPluginKill {
		kills = 1 + s.rnd.IntN(3)
	}
	churn := s.churn(ctx, vm, adds, dels, kills)

	switch kind {
	case drillAgentKill:
		sleep(ctx, s.jitter(100, 900))
		vm.Agent.Kill()
		sleep(ctx, s.jitter(200, 1500))
		if err := vm.Agent.Start(ctx); err != nil {
			r.errs = append(r.errs, err)
		}
		r.note = vm.Name
	case drillOpKill:
		midPut := s.waitForPut(ctx, 5*time.Second)
		s.tb.Operator.Kill()
		sleep(ctx, s.jitter(200, 1500))
		if err := s.tb.Operator.Start(ctx); err != nil {
			r.errs = append(r.errs, err)
		}
		r.note = "between writes"
		if midPut {
			r.note = "mid-PUT"
			s.rep.count("operator killed mid-PUT")
		}
	case drillAPIRestart:
		sleep(ctx, s.jitter(100, 800))
		if err := s.tb.RestartAPIServer(ctx, s.jitter(300, 2000)); err != nil {
			r.errs = append(r.errs, err)
		}
	}
	res := <-churn
	if r.withFaults {
		// The writes that follow the burst (a scale-up finishing, idle IPs
		// going back after the agents' 2 s cooldown) meet faults too.
		sleep(ctx, s.jitter(2000, 4000))
		s.tb.Faults.Set(0)
		res.healedAt = time.Now()
	}
	r.started, r.deleted = len(res.started), res.deleted
	r.errs = append(r.errs, res.errs...)
	if kind == drillPluginKill {
		r.note = fmt.Sprintf("%d of %d kills landed after the allocation", res.killsLanded, kills)
		s.rep.countN("CNI plugin killed mid-ADD", res.killsLanded)
	}
	s.live = append(s.live, res.started...)
	r.settle, r.settled, r.last, r.unsafe = s.settle(ctx, res.healedAt)
	return r
}

type churnResult struct {
	started     []*testbed.Pod
	deleted     int
	killsLanded int
	errs        []error
	healedAt    time.Time
}

// churn starts adds pods on vm (the first kills of them with the plugin
// killed mid-ADD) and deletes dels random live pods, concurrently, the way
// kubelet retries: a failed ADD is followed by a new sandbox, a failed DEL
// is retried. It returns at once; the result arrives when all are done.
func (s *soak) churn(ctx context.Context, vm *testbed.VM, adds, dels, kills int) <-chan churnResult {
	out := make(chan churnResult, 1)
	s.rnd.Shuffle(len(s.live), func(i, j int) { s.live[i], s.live[j] = s.live[j], s.live[i] })
	victims := append([]*testbed.Pod(nil), s.live[:dels]...)
	s.live = s.live[dels:]
	names := make([]string, adds)
	for i := range names {
		names[i] = fmt.Sprintf("soak-%d", s.nextPod)
		s.nextPod++
	}
	go func() {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var res churnResult
		for i, name := range names {
			wg.Go(func() {
				p, landed, err := startLikeKubelet(ctx, s.tb, vm, name, i < kills)
				mu.Lock()
				defer mu.Unlock()
				if landed {
					res.killsLanded++
				}
				if err != nil {
					res.errs = append(res.errs, err)
					return
				}
				res.started = append(res.started, p)
			})
		}
		for _, p := range victims {
			wg.Go(func() {
				err := deleteLikeKubelet(ctx, s.tb, p)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.errs = append(res.errs, err)
					return
				}
				res.deleted++
			})
		}
		wg.Wait()
		res.healedAt = time.Now()
		out <- res
	}()
	return out
}

// startLikeKubelet starts a pod until it works or startLimit passes: each
// failed ADD was already followed by a DEL of its sandbox (StartPod does
// that), the next try is a new sandbox.
func startLikeKubelet(ctx context.Context, tb *testbed.Testbed, vm *testbed.VM, name string, killFirst bool) (*testbed.Pod, bool, error) {
	deadline := time.Now().Add(startLimit)
	landed := false
	for {
		var p *testbed.Pod
		var err error
		if killFirst {
			p, landed, err = tb.StartPodKillingPlugin(ctx, vm, name)
			killFirst = false
		} else {
			p, err = tb.StartPod(ctx, vm, name)
		}
		if err == nil {
			return p, landed, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, landed, fmt.Errorf("pod %s on %s never started: %w", name, vm.Name, err)
		}
		sleep(ctx, 300*time.Millisecond)
	}
}

// deleteLikeKubelet retries a pod's DEL until it works (an agent that is
// down fails it), as kubelet does.
func deleteLikeKubelet(ctx context.Context, tb *testbed.Testbed, p *testbed.Pod) error {
	deadline := time.Now().Add(startLimit)
	for {
		err := tb.DeletePod(ctx, p)
		if err == nil || errors.Is(err, context.Canceled) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s never deleted: %w", p.Name, err)
		}
		sleep(ctx, 300*time.Millisecond)
	}
}

// waitForPut waits until some NIC write is in progress in ARM.
func (s *soak) waitForPut(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, nic := range s.tb.Sim.Snapshot().NICs {
			if nic.ProvisioningState == "Updating" {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// settle audits until the findings are clean or settleMax passes. Unsafe
// findings seen on the way are kept even if they go away.
func (s *soak) settle(ctx context.Context, from time.Time) (time.Duration, bool, findings, []string) {
	seen := map[string]bool{}
	var unsafe []string
	var last findings
	deadline := from.Add(settleMax)
	for {
		f, err := audit(ctx, s.tb, s.live)
		if err == nil {
			for _, u := range append(append([]string(nil), f.doubles...), f.misplaced...) {
				if !seen[u] {
					seen[u] = true
					unsafe = append(unsafe, u)
				}
			}
			last = f
			if f.settled() {
				return time.Since(from), true, f, unsafe
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(from), false, last, unsafe
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

func (s *soak) jitter(minMS, maxMS int) time.Duration {
	return time.Duration(minMS+s.rnd.IntN(maxMS-minMS+1)) * time.Millisecond
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
