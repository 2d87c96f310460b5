package testbed

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// SetServiceEndpoint enables (on) or disables a service endpoint on a subnet of
// vnet-e2e as the network administrator does it: GET the subnet, edit
// serviceEndpoints, PUT it back (keeping its other endpoints and associations).
func (tb *Testbed) SetServiceEndpoint(ctx context.Context, subnet, service string, on bool) error {
	f, err := tb.ARM()
	if err != nil {
		return err
	}
	c := f.NewSubnetsClient()
	got, err := c.Get(ctx, ResourceGroup, "vnet-e2e", subnet, nil)
	if err != nil {
		return fmt.Errorf("get subnet %s: %w", subnet, err)
	}
	var eps []*armnetwork.ServiceEndpointPropertiesFormat
	for _, e := range got.Properties.ServiceEndpoints {
		if e != nil && e.Service != nil && lower(*e.Service) != lower(service) {
			eps = append(eps, e)
		}
	}
	if on {
		eps = append(eps, &armnetwork.ServiceEndpointPropertiesFormat{Service: to.Ptr(service)})
	}
	got.Properties.ServiceEndpoints = eps
	p, err := c.BeginCreateOrUpdate(ctx, ResourceGroup, "vnet-e2e", subnet, got.Subnet, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, azurePoll)
	}
	if err != nil {
		return fmt.Errorf("set service endpoint %s of subnet %s to %v: %w", service, subnet, on, err)
	}
	return nil
}

// WaitPoolServiceEndpoint waits until vm's NodeIPPool status shows (on) or no longer
// shows the service endpoint, annotating the pool every second so the operator
// passes over it again (it follows endpoints on its passes, through a subnet read
// cached for 30 s).
func (tb *Testbed) WaitPoolServiceEndpoint(ctx context.Context, vm *VM, service string, on bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pool, err := tb.Pool(ctx, vm)
		has := false
		if err == nil {
			for _, e := range pool.Status.SubnetServiceEndpoints {
				has = has || lower(e.Service) == lower(service)
			}
			if has == on {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("pool %s: service endpoint %s in status is %v after %s, want %v (last error %v)", vm.Name, service, has, timeout, on, err)
		}
		if err := tb.TouchPool(ctx, vm); err != nil {
			return err
		}
		time.Sleep(time.Second)
	}
}
