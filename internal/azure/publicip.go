package azure

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// CreatedByTag marks the public IPs the operator creates for pods.
const CreatedByTag = "nicpool.io-created-by"

// ParsePublicIPID parses a Microsoft.Network/publicIPAddresses ID.
func ParsePublicIPID(id string) (ResourceID, error) {
	return parseTyped(id, "public ip", "Microsoft.Network", "publicIPAddresses")
}

// CreatePublicIP makes sure a Standard, static IPv4 public IP with the ID
// exists in location: one that already exists is left as it is (no write),
// otherwise it is created and the long-running operation waited for at most
// LROTimeout (a KindPending error after that; calling again finds it).
func (c *NICClient) CreatePublicIP(ctx context.Context, id, location string) error {
	rid, err := ParsePublicIPID(id)
	if err != nil {
		return fmt.Errorf("create public ip: %w", err)
	}
	f, err := c.factory(rid.SubscriptionID)
	if err != nil {
		return err
	}
	cl := f.NewPublicIPAddressesClient()
	if _, err := cl.Get(ctx, rid.ResourceGroup, rid.Name, nil); err == nil {
		return nil
	} else if Classify(err) != KindNotFound {
		return fmt.Errorf("get public ip %s: %w", id, err)
	}
	poller, err := cl.BeginCreateOrUpdate(ctx, rid.ResourceGroup, rid.Name, armnetwork.PublicIPAddress{
		Location: to.Ptr(location),
		SKU:      &armnetwork.PublicIPAddressSKU{Name: to.Ptr(armnetwork.PublicIPAddressSKUNameStandard)},
		Tags:     map[string]*string{CreatedByTag: to.Ptr("nicpool-operator")},
		Properties: &armnetwork.PublicIPAddressPropertiesFormat{
			PublicIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodStatic),
			PublicIPAddressVersion:   to.Ptr(armnetwork.IPVersionIPv4),
		},
	}, nil)
	if err != nil {
		return fmt.Errorf("create public ip %s: %w", id, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.LROTimeout)
	defer cancel()
	if _, err := poller.PollUntilDone(waitCtx, nil); err != nil {
		if waitCtx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("create public ip %s: %w: %w", id, ErrPending, err)
		}
		return fmt.Errorf("create public ip %s: %w", id, err)
	}
	return nil
}

// DeletePublicIP deletes a public IP; one already gone is no error. It waits
// for the long-running operation at most LROTimeout (a KindPending error
// after that).
func (c *NICClient) DeletePublicIP(ctx context.Context, id string) error {
	rid, err := ParsePublicIPID(id)
	if err != nil {
		return fmt.Errorf("delete public ip: %w", err)
	}
	f, err := c.factory(rid.SubscriptionID)
	if err != nil {
		return err
	}
	poller, err := f.NewPublicIPAddressesClient().BeginDelete(ctx, rid.ResourceGroup, rid.Name, nil)
	if err != nil {
		if Classify(err) == KindNotFound {
			return nil
		}
		return fmt.Errorf("delete public ip %s: %w", id, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.LROTimeout)
	defer cancel()
	if _, err := poller.PollUntilDone(waitCtx, nil); err != nil {
		if Classify(err) == KindNotFound {
			return nil
		}
		if waitCtx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("delete public ip %s: %w: %w", id, ErrPending, err)
		}
		return fmt.Errorf("delete public ip %s: %w", id, err)
	}
	return nil
}
