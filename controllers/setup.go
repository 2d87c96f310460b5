package controllers

import (
	"context"
	"errors"
	"fmt"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// Setup registers the operator with mgr: the ledger and its rebuild, the
// Node and NodeIPPool reconcilers and the health and readiness checks. It
// returns the ledger (for tests and metrics).
func Setup(mgr ctrl.Manager, opts Options, nics NICAPI) (*Ledger, error) {
	return setup(mgr, opts, nics, nil)
}

// setup is Setup with a hook to adjust the pool reconciler (tests).
func setup(mgr ctrl.Manager, opts Options, nics NICAPI, tweak func(*PoolReconciler)) (*Ledger, error) {
	ledger := NewLedger(opts.PerVNetLimit)
	ledger.onChange = ledgerMetrics(opts.PerVNetLimit)
	claims := newNICClaims()
	if err := mgr.Add(&ledgerRebuilder{reader: mgr.GetAPIReader(), ledger: ledger, claims: claims, perVM: opts.PerVMLimit}); err != nil {
		return nil, fmt.Errorf("add ledger rebuild: %w", err)
	}
	pools := &PoolReconciler{
		Client: mgr.GetClient(), NICs: nics, Ledger: ledger, claims: claims,
		Recorder:   mgr.GetEventRecorder("nicpool-operator"),
		PerVMLimit: opts.PerVMLimit, Workers: opts.Workers, Scope: opts.Scope,
		LimitRetry: opts.LimitRetry, PendingRetry: opts.PendingRetry, ThrottleRetry: opts.ThrottleRetry,
	}
	if pips, ok := nics.(PublicIPAPI); ok {
		pools.PublicIPs = pips
	}
	if opts.ServiceLB.Enabled {
		svcs, err := setupServices(mgr, opts.ServiceLB, nics)
		if err != nil {
			return nil, err
		}
		pools.Services = svcs
	}
	if tweak != nil {
		tweak(pools)
	}
	if err := pools.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up nodeippool controller: %w", err)
	}
	nodes := &NodeReconciler{Client: mgr.GetClient(), Workers: opts.Workers}
	if err := nodes.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up node controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("vnet-ledger", readyCheck(mgr, ledger)); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	return ledger, nil
}

// setupServices registers the Service controller and the EndpointSlice
// index pool passes look memberships up in, and returns their lookup.
func setupServices(mgr ctrl.Manager, opts ServiceLBOptions, nics NICAPI) (*serviceBackends, error) {
	names, err := newServiceLBs(opts)
	if err != nil {
		return nil, err
	}
	lbs, ok := nics.(LoadBalancerAPI)
	if !ok {
		return nil, errors.New("service load balancers: the ARM client has no load balancer operations")
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &discoveryv1.EndpointSlice{}, readyEndpointIPIndex, readyEndpointIPs); err != nil {
		return nil, fmt.Errorf("index endpointslices by ready address: %w", err)
	}
	svc := &ServiceReconciler{Client: mgr.GetClient(), LBs: lbs, Recorder: mgr.GetEventRecorder("nicpool-operator"), names: names}
	if err := svc.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up service controller: %w", err)
	}
	return &serviceBackends{reader: mgr.GetCache(), names: names}, nil
}

// leaderElectionID names the Lease the operator's replicas compete for.
const leaderElectionID = "nicpool-operator.network.nicpool.io"

// ManagerOptions returns the manager options the operator runs with: the
// scheme, the metrics and probe addresses, and leader election on one Lease,
// released at once by a leader that stops so a standby need not wait for it
// to expire.
func ManagerOptions(opts Options, scheme *runtime.Scheme) ctrl.Options {
	return ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	}
}

// NewScheme returns a scheme with the built-in kinds and NodeIPPool.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register built-in kinds: %w", err)
	}
	if err := nicpoolv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register nicpool kinds: %w", err)
	}
	return s, nil
}
