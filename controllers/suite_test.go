package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
	"github.com/nicpool/nicpool/internal/azure"
	"github.com/nicpool/nicpool/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

const (
	testSub = "00000000-0000-0000-0000-00000000c0de"
	testRG  = "rg-nodes"
)

// sim is an armsim server with a NIC client wired to it.
type sim struct {
	srv  *armsim.Server
	nics *azure.NICClient
}

// startSim runs armsim with topo and returns a client for it.
func startSim(t *testing.T, topo *armsim.Topology) *sim {
	t.Helper()
	opts := armsim.Options{Topology: topo, Throttle: armsim.ThrottleOptions{Disabled: true}, PutLatency: 20 * time.Millisecond}
	srv, co, cred := armsimtest.Start(t, opts)
	nics, err := azure.NewNICClient(azure.Config{
		ClientOptions: co, Credential: cred, ReadQPS: 2000, ReadBurst: 2000, WriteQPS: 2000, WriteBurst: 2000,
		LROTimeout: 20 * time.Second, Observer: ObserveARMCall,
	})
	if err != nil {
		t.Fatalf("create nic client: %v", err)
	}
	return &sim{srv: srv, nics: nics}
}

// testOptions are operator options with short retry intervals.
func testOptions() Options {
	o := DefaultOptions()
	o.LimitRetry, o.PendingRetry, o.ThrottleRetry = 500*time.Millisecond, 200*time.Millisecond, time.Second
	return o
}

// operator is a running manager with the operator in it.
type operator struct {
	t      *testing.T
	ledger *Ledger
	cancel context.CancelFunc
	done   chan error
}

// operatorSpec describes a test operator; the zero value of each field but
// opts and nics takes a default.
type operatorSpec struct {
	// mgr are the manager's options; nil means testManagerOptions().
	mgr *ctrl.Options
	// opts are the operator's options.
	opts Options
	// nics reaches ARM.
	nics NICAPI
	// tweak adjusts the pool reconciler.
	tweak func(*PoolReconciler)
	// wrap, if set, wraps the manager the operator is set up with.
	wrap func(manager.Manager) manager.Manager
}

// testManagerOptions are manager options without listeners or leader election.
func testManagerOptions() *ctrl.Options {
	return &ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
}

// startOperator starts a manager with the operator; t.Cleanup stops it.
func startOperator(t *testing.T, s *sim, opts Options, tweak func(*PoolReconciler)) *operator {
	t.Helper()
	return launchOperator(t, operatorSpec{opts: opts, nics: s.nics, tweak: tweak})
}

// launchOperator starts the operator that spec describes; t.Cleanup stops it.
func launchOperator(t *testing.T, spec operatorSpec) *operator {
	t.Helper()
	if spec.mgr == nil {
		spec.mgr = testManagerOptions()
	}
	mgr, err := ctrl.NewManager(env.Config, *spec.mgr)
	if err != nil {
		t.Fatalf("create manager: %v", err)
	}
	wrapped := mgr
	if spec.wrap != nil {
		wrapped = spec.wrap(mgr)
	}
	ledger, err := setup(wrapped, spec.opts, spec.nics, spec.tweak)
	if err != nil {
		t.Fatalf("set up operator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	op := &operator{t: t, ledger: ledger, cancel: cancel, done: make(chan error, 1)}
	go func() { op.done <- mgr.Start(ctx) }()
	t.Cleanup(op.stop)
	return op
}

// stop stops the manager, waits for it and fails the test if it failed.
func (o *operator) stop() {
	if o.cancel == nil {
		return
	}
	o.cancel()
	if err := <-o.done; err != nil {
		o.t.Errorf("operator stopped with an error: %v", err)
	}
	o.cancel = nil
}

func providerID(i int) string {
	return fmt.Sprintf("azure:///subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/vm-%d", testSub, testRG, i)
}

func nicID(i int) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/vm-%d-nic", testSub, testRG, i)
}

// createNode creates a Node and removes it, and its pool, when the test ends
// (envtest runs no garbage collector, so the pool is deleted explicitly).
func createNode(t *testing.T, name, providerID string) {
	t.Helper()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{ProviderID: providerID}}
	if err := env.Client.Create(ctx, node); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() { deleteNodeAndPool(t, name, true) })
}

// deleteNodeAndPool deletes a Node and its pool. With force it strips the
// finalizer of a pool no operator is left to release.
func deleteNodeAndPool(t *testing.T, name string, force bool) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); client.IgnoreNotFound(err) != nil {
		t.Errorf("delete node %s: %v", name, err)
	}
	if err := env.Client.Delete(ctx, &nicpoolv1.NodeIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}); client.IgnoreNotFound(err) != nil {
		t.Errorf("delete pool %s: %v", name, err)
	}
	if !force {
		return
	}
	// The operator may be finalizing the pool at the same time: re-read on
	// conflict, and a pool gone meanwhile needs nothing more.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pool := &nicpoolv1.NodeIPPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, pool); err != nil {
			return err
		}
		if !controllerutil.RemoveFinalizer(pool, nicpoolv1.FinalizerName) {
			return nil
		}
		return env.Client.Update(ctx, pool)
	})
	if client.IgnoreNotFound(err) != nil {
		t.Errorf("remove finalizer from pool %s: %v", name, err)
	}
}

// getPool reads a pool, failing the test on error.
func getPool(t *testing.T, name string) *nicpoolv1.NodeIPPool {
	t.Helper()
	pool := &nicpoolv1.NodeIPPool{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, pool); err != nil {
		t.Fatalf("get pool %s: %v", name, err)
	}
	return pool
}

// eventually polls cond until it returns "" or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s: %s", timeout, last)
}

// setRequest writes the agent's half of the spec.
func setRequest(t *testing.T, name string, n int, notInUse []nicpoolv1.IPv4Address) {
	t.Helper()
	ctx := context.Background()
	for {
		pool := getPool(t, name)
		pool.Spec.RequestedIPCount, pool.Spec.IPsNotInUse = int32(n), notInUse
		err := env.Client.Update(ctx, pool)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "modified") {
			t.Fatalf("update pool %s: %v", name, err)
		}
	}
}

// nicOwned returns the nicpool IP configurations (name -> IP) and the
// foreign ones of a NIC in the emulator.
func nicOwned(s *sim, id string) (owned, foreign map[string]string) {
	return nicOwnedIn(s.srv.Snapshot(), id)
}

// nicOwnedIn is nicOwned in a snapshot: tests that check many NICs take one
// snapshot per check, since each holds the emulator's lock while it copies
// every NIC (70 per poll made the operator's ARM calls wait).
func nicOwnedIn(snap armsim.Snapshot, id string) (owned, foreign map[string]string) {
	owned, foreign = map[string]string{}, map[string]string{}
	for _, n := range snap.NICs {
		if !strings.EqualFold(n.ID, id) {
			continue
		}
		for _, c := range n.IPConfigs {
			switch {
			case c.Primary:
			case strings.HasPrefix(c.Name, nicpoolv1.IPConfigurationPrefix):
				owned[c.Name] = c.IP
			default:
				foreign[c.Name] = c.IP
			}
		}
	}
	return owned, foreign
}

// statusMatchesNIC reports "" when the pool's status lists exactly the NIC's
// nicpool configurations and allocated equals want.
func statusMatchesNIC(s *sim, pool *nicpoolv1.NodeIPPool, id string, want int) string {
	return statusMatchesIn(s.srv.Snapshot(), pool, id, want)
}

// statusMatchesIn is statusMatchesNIC in a snapshot.
func statusMatchesIn(snap armsim.Snapshot, pool *nicpoolv1.NodeIPPool, id string, want int) string {
	owned, _ := nicOwnedIn(snap, id)
	if len(pool.Status.IPs) != want || int(pool.Status.AllocatedIPCount) != want || len(owned) != want {
		return fmt.Sprintf("pool %s: status has %d IPs (allocated %d), NIC has %d, want %d", pool.Name, len(pool.Status.IPs), pool.Status.AllocatedIPCount, len(owned), want)
	}
	for _, p := range pool.Status.IPs {
		if owned[p.IPConfiguration] != string(p.IP) {
			return fmt.Sprintf("pool %s: status lists %s=%s, NIC has %q", pool.Name, p.IPConfiguration, p.IP, owned[p.IPConfiguration])
		}
	}
	return ""
}

// condition returns a pool condition's status and reason.
func condition(pool *nicpoolv1.NodeIPPool, typ string) (metav1.ConditionStatus, string) {
	c := meta.FindStatusCondition(pool.Status.Conditions, typ)
	if c == nil {
		return "", ""
	}
	return c.Status, c.Reason
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

// lookPool reads a pool for polling; a missing pool reads as an empty one.
func lookPool(name string) *nicpoolv1.NodeIPPool {
	pool := &nicpoolv1.NodeIPPool{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: name}, pool); err != nil {
		pool.Name = name
	}
	return pool
}
