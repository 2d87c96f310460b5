package armsimtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/armsim/armsimtest"
)

func TestStartServesRealClient(t *testing.T) {
	topo := armsim.GenerateTopology("sub-1", "rg", "10.0.0.0/16", "10.0.0.0/24", 2)
	srv, co, cred := armsimtest.Start(t, armsim.Options{Topology: topo})
	client, err := armnetwork.NewInterfacesClient("sub-1", cred, co)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := client.Get(ctx, "rg", "vm-1-nic", nil)
	if err != nil {
		t.Fatalf("get nic from %s: %v", srv.URL(), err)
	}
	if ip := *got.Properties.IPConfigurations[0].Properties.PrivateIPAddress; ip != "10.0.0.5" {
		t.Errorf("primary ip = %s, want 10.0.0.5", ip)
	}
}
