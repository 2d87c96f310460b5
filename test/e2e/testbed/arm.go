package testbed

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
)

// ARM returns armnetwork clients for the testbed's armsim, as the operator would use
// them, so tests change NSGs, route tables, load balancers and public IPs through the
// real SDK.
func (tb *Testbed) ARM() (*armnetwork.ClientFactory, error) {
	co, err := armsimtest.ClientOptions(tb.Sim)
	if err != nil {
		return nil, fmt.Errorf("armsim client options: %w", err)
	}
	f, err := armnetwork.NewClientFactory(SubscriptionID, armsimtest.Credential{}, co)
	if err != nil {
		return nil, fmt.Errorf("armnetwork client factory: %w", err)
	}
	return f, nil
}
