package azure

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestUpdateNICAddsSecondaryConfigs(t *testing.T) {
	log := &callLog{}
	c, srv := startSim(t, armsim.Options{Topology: simTopology(2), PutLatency: 20 * time.Millisecond},
		func(cfg *Config) { cfg.Observer = log.observe })
	nic := getNIC(t, c, simNICID(0))
	oldEtag := *nic.Etag
	addDynamicConfigs(t, nic, "nicpool", 3)

	got, err := c.UpdateNIC(context.Background(), nic)
	if err != nil {
		t.Fatalf("update nic: %v", err)
	}
	if *got.Etag == oldEtag {
		t.Fatal("etag did not change after update")
	}
	if ps := *got.Properties.ProvisioningState; ps != "Succeeded" {
		t.Fatalf("provisioningState = %s, want Succeeded", ps)
	}
	seen := map[string]bool{}
	for _, cfg := range got.Properties.IPConfigurations {
		ip := *cfg.Properties.PrivateIPAddress
		if ip == "" || seen[ip] {
			t.Fatalf("config %s has empty or duplicate address %q", *cfg.Name, ip)
		}
		seen[ip] = true
	}
	if len(seen) != 4 {
		t.Fatalf("nic has %d addresses, want 4", len(seen))
	}
	for _, n := range srv.Snapshot().NICs {
		if SameID(n.ID, simNICID(0)) && len(n.IPConfigs) != 4 {
			t.Fatalf("armsim holds %d configs, want 4", len(n.IPConfigs))
		}
	}
	for _, op := range []string{"GetNIC", "PutNIC", "PollOperation"} {
		if len(log.get(op)) == 0 {
			t.Errorf("observer saw no %s call (saw %v)", op, log.calls)
		}
	}
	if s := log.get("PutNIC"); len(s) != 1 || (s[0] != http.StatusOK && s[0] != http.StatusCreated) {
		t.Errorf("PutNIC statuses = %v, want one 200/201", s)
	}
}

func TestUpdateNICStaleEtag(t *testing.T) {
	c, _ := startSim(t, armsim.Options{Topology: simTopology(1)}, nil)
	stale := getNIC(t, c, simNICID(0))
	fresh := getNIC(t, c, simNICID(0))
	addDynamicConfigs(t, fresh, "a", 1)
	if _, err := c.UpdateNIC(context.Background(), fresh); err != nil {
		t.Fatalf("first update: %v", err)
	}
	addDynamicConfigs(t, stale, "b", 1)
	_, err := c.UpdateNIC(context.Background(), stale)
	if k := Classify(err); k != KindPreconditionFailed {
		t.Fatalf("update with stale etag: %v (%s), want PreconditionFailed", err, k)
	}
}

func TestUpdateNICRefusesMissingEtag(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1)}, nil)
	nic := getNIC(t, c, simNICID(0))
	nic.Etag = nil
	if _, err := c.UpdateNIC(context.Background(), nic); err == nil {
		t.Fatal("update without etag succeeded")
	}
	if _, err := c.UpdateNIC(context.Background(), nil); err == nil {
		t.Fatal("update of nil nic succeeded")
	}
	if n := simCalls(srv, armsim.OpPutNIC); n != 0 {
		t.Fatalf("armsim saw %d PUTs, want 0", n)
	}
}

func TestConcurrentUpdatesSameEtagOneWins(t *testing.T) {
	const writers = 8
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1), PutLatency: 50 * time.Millisecond}, nil)
	base := getNIC(t, c, simNICID(0))
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := 0; i < writers; i++ {
		nic := getNIC(t, c, simNICID(0))
		nic.Etag = base.Etag
		addDynamicConfigs(t, nic, fmt.Sprintf("w%d", i), 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.UpdateNIC(context.Background(), nic)
		}()
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch k := Classify(err); {
		case err == nil:
			wins++
		case k == KindPreconditionFailed || k == KindConflict:
		default:
			t.Errorf("writer %d: %v classified %s, want PreconditionFailed or Conflict", i, err, k)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers succeeded, want exactly 1", wins)
	}
	if n := srv.Stats().PutsByNIC[simNICID(0)]; n != 1 {
		t.Fatalf("armsim accepted %d PUTs, want 1", n)
	}
}

func TestConcurrentUpdatesAcrossNICsUniqueAddresses(t *testing.T) {
	const nodes, perNIC = 25, 2 // 50 new addresses in one /24
	c, srv := startSim(t, armsim.Options{Topology: simTopology(nodes), PutLatency: 10 * time.Millisecond}, nil)
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := 0; i < nodes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nic, err := c.GetNIC(context.Background(), simNICID(i))
			if err != nil {
				errs[i] = err
				return
			}
			addDynamicConfigs(t, nic, "nicpool", perNIC)
			_, errs[i] = c.UpdateNIC(context.Background(), nic)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("update nic %d: %v", i, err)
		}
	}
	owner := map[string]string{}
	total := 0
	for _, n := range srv.Snapshot().NICs {
		for _, cfg := range n.IPConfigs {
			if prev, dup := owner[cfg.IP]; dup {
				t.Fatalf("address %s on both %s and %s/%s", cfg.IP, prev, n.Name, cfg.Name)
			}
			owner[cfg.IP] = n.Name + "/" + cfg.Name
			total++
		}
	}
	if want := nodes * (1 + perNIC); total != want {
		t.Fatalf("armsim holds %d configurations, want %d", total, want)
	}
}

func TestNotFound(t *testing.T) {
	c, _ := startSim(t, armsim.Options{Topology: simTopology(1)}, nil)
	ghostRG := "/subscriptions/" + testSub + "/resourceGroups/nope/providers/Microsoft.Network/networkInterfaces/vm-0-nic"
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"nic", func(ctx context.Context) error { _, err := c.GetNIC(ctx, simNICID(7)); return err }},
		{"resource group", func(ctx context.Context) error { _, err := c.GetNIC(ctx, ghostRG); return err }},
		{"subnet", func(ctx context.Context) error {
			_, err := c.GetSubnet(ctx, "/subscriptions/"+testSub+"/resourceGroups/"+simRG+"/providers/Microsoft.Network/virtualNetworks/vnet-0/subnets/ghost")
			return err
		}},
		{"vnet", func(ctx context.Context) error {
			_, err := c.GetVNet(ctx, "/subscriptions/"+testSub+"/resourceGroups/"+simRG+"/providers/Microsoft.Network/virtualNetworks/ghost")
			return err
		}},
		{"vm without nic", func(ctx context.Context) error { _, err := c.FindNICForVM(ctx, simVMID(9)); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(context.Background())
			if k := Classify(err); k != KindNotFound {
				t.Fatalf("got %v (%s), want NotFound", err, k)
			}
		})
	}
}

func TestCapacityErrors(t *testing.T) {
	tests := []struct {
		name    string
		subnet  string
		maxCfgs int
		add     int
		want    Kind
	}{
		// A /29 has 8 addresses; Azure reserves 5 and the primary takes 1, leaving 2.
		{name: "subnet full", subnet: "10.0.0.0/29", add: 3, want: KindSubnetFull},
		{name: "subnet exactly filled", subnet: "10.0.0.0/29", add: 2, want: KindOther},
		{name: "too many ip configurations", subnet: "10.0.0.0/24", maxCfgs: 4, add: 4, want: KindTooManyIPConfigurations},
		{name: "at the ip configuration limit", subnet: "10.0.0.0/24", maxCfgs: 4, add: 3, want: KindOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := armsim.GenerateTopology(testSub, simRG, "10.0.0.0/16", tt.subnet, 1)
			c, _ := startSim(t, armsim.Options{Topology: topo, MaxIPConfigsPerNIC: tt.maxCfgs}, nil)
			nic := getNIC(t, c, simNICID(0))
			addDynamicConfigs(t, nic, "nicpool", tt.add)
			_, err := c.UpdateNIC(context.Background(), nic)
			if tt.want == KindOther {
				if err != nil {
					t.Fatalf("update: %v", err)
				}
				return
			}
			if k := Classify(err); k != tt.want {
				t.Fatalf("update: %v (%s), want %s", err, k, tt.want)
			}
		})
	}
}
