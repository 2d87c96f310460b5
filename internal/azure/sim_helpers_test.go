package azure

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
)

const simRG = "rg-sim"

// startSim starts armsim with n generated nodes and returns a NICClient wired to it the way
// tests wire it (base ClientOptions + Credential); mod may adjust the Config.
func startSim(t *testing.T, opts armsim.Options, mod func(*Config)) (*NICClient, *armsim.Server) {
	t.Helper()
	srv, co, cred := armsimtest.Start(t, opts)
	cfg := Config{ClientOptions: co, Credential: cred, LROTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewNICClient(cfg)
	if err != nil {
		t.Fatalf("create nic client: %v", err)
	}
	return c, srv
}

func simTopology(nodes int) *armsim.Topology {
	return armsim.GenerateTopology(testSub, simRG, "10.0.0.0/16", "10.0.0.0/24", nodes)
}

func simNICID(i int) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkInterfaces/vm-%d-nic", testSub, simRG, i)
}

func simVMID(i int) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/vm-%d", testSub, simRG, i)
}

// addDynamicConfigs appends n dynamic secondary IP configurations named prefix-K, in the
// primary configuration's subnet, as the operator does.
func addDynamicConfigs(t *testing.T, nic *armnetwork.Interface, prefix string, n int) {
	t.Helper()
	var subnet *armnetwork.Subnet
	for _, c := range nic.Properties.IPConfigurations {
		if c.Properties != nil && c.Properties.Primary != nil && *c.Properties.Primary {
			subnet = c.Properties.Subnet
		}
	}
	if subnet == nil {
		t.Fatalf("nic %s has no primary ip configuration", *nic.ID)
	}
	for k := 0; k < n; k++ {
		nic.Properties.IPConfigurations = append(nic.Properties.IPConfigurations, &armnetwork.InterfaceIPConfiguration{
			Name: to.Ptr(fmt.Sprintf("%s-%d", prefix, k)),
			Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
				PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic),
				Subnet:                    &armnetwork.Subnet{ID: subnet.ID},
			},
		})
	}
}

// getNIC reads a NIC or fails the test.
func getNIC(t *testing.T, c *NICClient, id string) *armnetwork.Interface {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nic, err := c.GetNIC(ctx, id)
	if err != nil {
		t.Fatalf("get nic %s: %v", id, err)
	}
	return nic
}

// callLog is an Observer that records every call.
type callLog struct {
	mu    sync.Mutex
	calls map[string][]int
}

func (l *callLog) observe(op string, status int, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[string][]int{}
	}
	l.calls[op] = append(l.calls[op], status)
}

func (l *callLog) get(op string) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.calls[op]...)
}

// simCalls returns how many calls of op armsim answered (any status).
func simCalls(srv *armsim.Server, op armsim.Op) int {
	n := 0
	for _, c := range srv.Stats().Calls[op] {
		n += c
	}
	return n
}
