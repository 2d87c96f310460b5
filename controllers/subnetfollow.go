package controllers

import (
	"context"
	"reflect"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// defaultSubnetResync is how often the operator looks at the pools' subnets
// for service endpoints the network administrator enabled or removed.
const defaultSubnetResync = time.Minute

// subnetFollower wakes the pools whose status.subnetServiceEndpoints no longer
// match their subnet, so an endpoint enabled on an idle cluster reaches the
// agents without a pool change. It costs one subnet read per subnet per
// period (reads within the NIC client's read cache cost none). It runs on the
// leader only (a manager Runnable that does not say otherwise).
type subnetFollower struct {
	r      *PoolReconciler
	period time.Duration
	wake   func(pools []string)
}

// Start checks every period until ctx ends.
func (f *subnetFollower) Start(ctx context.Context) error {
	t := time.NewTicker(f.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f.check(ctx)
		}
	}
}

// check wakes every pool whose published endpoints differ from its subnet's.
// A failed read leaves the subnet's pools for the next period.
func (f *subnetFollower) check(ctx context.Context) {
	var pools nicpoolv1.NodeIPPoolList
	if err := f.r.List(ctx, &pools); err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("Skipped the subnet check: listing pools failed", "err", err.Error())
		return
	}
	bySubnet := map[string][]*nicpoolv1.NodeIPPool{}
	for i := range pools.Items {
		if p := &pools.Items[i]; p.Status.SubnetID != "" {
			bySubnet[p.Status.SubnetID] = append(bySubnet[p.Status.SubnetID], p)
		}
	}
	var stale []string
	for id, ps := range bySubnet {
		subnet, err := f.r.NICs.GetSubnet(ctx, id)
		if err != nil {
			continue
		}
		want := serviceEndpoints(subnet)
		for _, p := range ps {
			if !reflect.DeepEqual(p.Status.SubnetServiceEndpoints, want) {
				stale = append(stale, p.Name)
			}
		}
	}
	if len(stale) > 0 {
		f.wake(stale)
	}
}
