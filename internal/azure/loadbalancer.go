package azure

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// ParseLoadBalancerID parses a Microsoft.Network/loadBalancers ID.
func ParseLoadBalancerID(id string) (ResourceID, error) {
	return parseTyped(id, "load balancer", "Microsoft.Network", "loadBalancers")
}

// GetLoadBalancer reads a load balancer (KindNotFound when it does not exist).
func (c *NICClient) GetLoadBalancer(ctx context.Context, id string) (*armnetwork.LoadBalancer, error) {
	rid, err := ParseLoadBalancerID(id)
	if err != nil {
		return nil, fmt.Errorf("get load balancer: %w", err)
	}
	f, err := c.factory(rid.SubscriptionID)
	if err != nil {
		return nil, err
	}
	resp, err := f.NewLoadBalancersClient().Get(ctx, rid.ResourceGroup, rid.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("get load balancer %s: %w", id, err)
	}
	return &resp.LoadBalancer, nil
}

// PutLoadBalancer creates or replaces the load balancer lb.ID with lb's body:
// with If-Match on lb.Etag when it has one (a read-modify-write), else with
// If-None-Match * (a create that must not replace another writer's). It
// waits for the long-running operation at most LROTimeout (a KindPending
// error after that) and returns the load balancer as ARM left it.
func (c *NICClient) PutLoadBalancer(ctx context.Context, lb *armnetwork.LoadBalancer) (*armnetwork.LoadBalancer, error) {
	if lb == nil || lb.ID == nil {
		return nil, fmt.Errorf("put load balancer: no id: %w", ErrInvalidResourceID)
	}
	rid, err := ParseLoadBalancerID(*lb.ID)
	if err != nil {
		return nil, fmt.Errorf("put load balancer: %w", err)
	}
	f, err := c.factory(rid.SubscriptionID)
	if err != nil {
		return nil, err
	}
	h := http.Header{"If-None-Match": []string{"*"}}
	if lb.Etag != nil && *lb.Etag != "" {
		h = http.Header{"If-Match": []string{*lb.Etag}}
	}
	body := *lb
	body.Etag = nil
	poller, err := f.NewLoadBalancersClient().BeginCreateOrUpdate(policy.WithHTTPHeader(ctx, h), rid.ResourceGroup, rid.Name, body, nil)
	if err != nil {
		return nil, fmt.Errorf("put load balancer %s: %w", *lb.ID, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.LROTimeout)
	defer cancel()
	resp, err := poller.PollUntilDone(waitCtx, nil)
	if err != nil {
		if waitCtx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("put load balancer %s: %w: %w", *lb.ID, ErrPending, err)
		}
		return nil, fmt.Errorf("put load balancer %s: %w", *lb.ID, err)
	}
	return &resp.LoadBalancer, nil
}

// DeleteLoadBalancer deletes a load balancer; one already gone is no error.
// It waits for the long-running operation at most LROTimeout.
func (c *NICClient) DeleteLoadBalancer(ctx context.Context, id string) error {
	rid, err := ParseLoadBalancerID(id)
	if err != nil {
		return fmt.Errorf("delete load balancer: %w", err)
	}
	f, err := c.factory(rid.SubscriptionID)
	if err != nil {
		return err
	}
	poller, err := f.NewLoadBalancersClient().BeginDelete(ctx, rid.ResourceGroup, rid.Name, nil)
	if err != nil {
		if Classify(err) == KindNotFound {
			return nil
		}
		return fmt.Errorf("delete load balancer %s: %w", id, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.LROTimeout)
	defer cancel()
	if _, err := poller.PollUntilDone(waitCtx, nil); err != nil && Classify(err) != KindNotFound {
		if waitCtx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("delete load balancer %s: %w: %w", id, ErrPending, err)
		}
		return fmt.Errorf("delete load balancer %s: %w", id, err)
	}
	return nil
}

// GetPublicIPAddress reads a public IP address (its properties.ipAddress is
// the address a load balancer frontend on it answers at).
func (c *NICClient) GetPublicIPAddress(ctx context.Context, id string) (*armnetwork.PublicIPAddress, error) {
	rid, err := ParsePublicIPID(id)
	if err != nil {
		return nil, fmt.Errorf("get public ip: %w", err)
	}
	f, err := c.factory(rid.SubscriptionID)
	if err != nil {
		return nil, err
	}
	resp, err := f.NewPublicIPAddressesClient().Get(ctx, rid.ResourceGroup, rid.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("get public ip %s: %w", id, err)
	}
	return &resp.PublicIPAddress, nil
}
