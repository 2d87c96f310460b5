package azure

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestFindNICForVM(t *testing.T) {
	topo := simTopology(3)
	// vm-multi has two NICs; the first by name must win (both report primary).
	for _, name := range []string{"z-nic", "a-nic"} {
		topo.NICs = append(topo.NICs, armsim.NICSpec{ResourceGroup: simRG, Name: name, VMName: "vm-multi", VNet: "vnet-0", Subnet: "nodes"})
	}
	log := &callLog{}
	c, _ := startSim(t, armsim.Options{Topology: topo}, func(cfg *Config) { cfg.Observer = log.observe })
	multi := strings.Replace(simVMID(0), "vm-0", "vm-multi", 1)
	tests := []struct {
		name    string
		vmID    string
		wantNIC string
		want    Kind
	}{
		{name: "exact", vmID: simVMID(1), wantNIC: "vm-1-nic"},
		{name: "mixed case vm id", vmID: strings.ToUpper(simVMID(2)), wantNIC: "vm-2-nic"},
		{name: "several nics", vmID: multi, wantNIC: "a-nic"},
		{name: "unknown vm", vmID: simVMID(42), want: KindNotFound},
		{name: "unknown resource group", vmID: strings.Replace(simVMID(1), simRG, "elsewhere", 1), want: KindNotFound},
		{name: "not a vm id", vmID: simNICID(1), want: KindOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.FindNICForVM(context.Background(), tt.vmID)
			if tt.wantNIC == "" {
				if err == nil || Classify(err) != tt.want {
					t.Fatalf("FindNICForVM = %q, %v (%s); want %s error", got, err, Classify(err), tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindNICForVM: %v", err)
			}
			id, err := ParseNICID(got)
			if err != nil || id.Name != tt.wantNIC {
				t.Fatalf("FindNICForVM = %q (%v), want nic %s", got, err, tt.wantNIC)
			}
		})
	}
	if len(log.get("ListNICs")) == 0 {
		t.Fatal("observer saw no ListNICs call")
	}
}

func TestPickNICPrefersPrimary(t *testing.T) {
	nic := func(name string, primary bool) *armnetwork.Interface {
		return &armnetwork.Interface{ID: to.Ptr("/x/" + name), Name: to.Ptr(name),
			Properties: &armnetwork.InterfacePropertiesFormat{Primary: to.Ptr(primary)}}
	}
	tests := []struct {
		name string
		nics []*armnetwork.Interface
		want string
	}{
		{name: "none", nics: nil, want: ""},
		{name: "primary wins over name", nics: []*armnetwork.Interface{nic("a", false), nic("b", true)}, want: "b"},
		{name: "first by name", nics: []*armnetwork.Interface{nic("b", false), nic("A", false)}, want: "A"},
		{name: "first primary by name", nics: []*armnetwork.Interface{nic("c", true), nic("b", true), nic("a", false)}, want: "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pickNIC(tt.nics)
			if (got == nil) != (tt.want == "") || (got != nil && *got.Name != tt.want) {
				t.Fatalf("pickNIC = %v, want %q", got, tt.want)
			}
		})
	}
}

func TestGetSubnetAndVNet(t *testing.T) {
	log := &callLog{}
	c, _ := startSim(t, armsim.Options{Topology: simTopology(1)}, func(cfg *Config) { cfg.Observer = log.observe })
	nic := getNIC(t, c, simNICID(0))
	subnetID := *nic.Properties.IPConfigurations[0].Properties.Subnet.ID
	sn, err := c.GetSubnet(context.Background(), subnetID)
	if err != nil {
		t.Fatalf("get subnet: %v", err)
	}
	if sn.Properties == nil || sn.Properties.AddressPrefix == nil || *sn.Properties.AddressPrefix != "10.0.0.0/24" {
		t.Fatalf("subnet properties = %+v, want prefix 10.0.0.0/24", sn.Properties)
	}
	vnetID, err := VNetIDFromSubnetID(subnetID)
	if err != nil {
		t.Fatal(err)
	}
	vnet, err := c.GetVNet(context.Background(), vnetID)
	if err != nil {
		t.Fatalf("get vnet: %v", err)
	}
	if !SameID(*vnet.ID, vnetID) || len(vnet.Properties.AddressSpace.AddressPrefixes) != 1 ||
		*vnet.Properties.AddressSpace.AddressPrefixes[0] != "10.0.0.0/16" {
		t.Fatalf("vnet = %s %+v", *vnet.ID, vnet.Properties.AddressSpace)
	}
	if len(log.get("GetSubnet")) != 1 || len(log.get("GetVNet")) != 1 {
		t.Fatalf("observer calls = %v", log.calls)
	}
}

// TestProductionWiring uses the non-test path: ARMEndpoint + CACertFile + Auth none.
func TestProductionWiring(t *testing.T) {
	srv, err := armsim.New(armsim.Options{Topology: simTopology(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(t.Context(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "trusted ca", cfg: Config{ARMEndpoint: srv.URL(), CACertFile: caFile, Auth: AuthNone}},
		{name: "untrusted without ca", cfg: Config{ARMEndpoint: srv.URL(), Auth: AuthNone}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewNICClient(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = c.GetNIC(ctx, simNICID(0))
			if (err != nil) != tt.wantErr {
				t.Fatalf("get nic: %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

// Nodes joining at once share one paged list of their resource group's NICs; a VM the
// list does not show costs a list of its own, started after it asked.
func TestFindNICForVMSharesOneList(t *testing.T) {
	const vms = 150 // two pages of armsim's 100
	c, srv := startSim(t, armsim.Options{Topology: simTopology(vms)}, nil)
	errs := make(chan error, vms)
	for i := range vms {
		go func() {
			got, err := c.FindNICForVM(context.Background(), simVMID(i))
			if err == nil && !SameID(got, simNICID(i)) {
				err = fmt.Errorf("vm %d: got nic %s", i, got)
			}
			errs <- err
		}()
	}
	for range vms {
		if err := <-errs; err != nil {
			t.Fatalf("FindNICForVM: %v", err)
		}
	}
	// Callers that arrived while a list ran may start one more for VMs it did not show
	// only if the VM was missing; every VM is in the first list.
	if n := simCalls(srv, armsim.OpListNICs); n != 2 {
		t.Fatalf("%d concurrent lookups made %d list calls, want 2 (one list, two pages)", vms, n)
	}
	if _, err := c.FindNICForVM(context.Background(), simVMID(vms+1)); Classify(err) != KindNotFound {
		t.Fatalf("vm without nic: %v, want NotFound", err)
	}
	if n := simCalls(srv, armsim.OpListNICs); n != 4 {
		t.Fatalf("a vm missing from the index made %d list calls, want 2 more (a fresh list)", n-2)
	}
}

// Every node's first pass reads the same subnet and VNet: one read each serves them all.
func TestSubnetAndVNetReadsAreShared(t *testing.T) {
	c, srv := startSim(t, armsim.Options{Topology: simTopology(1)}, nil)
	nic := getNIC(t, c, simNICID(0))
	subnetID := *nic.Properties.IPConfigurations[0].Properties.Subnet.ID
	vnetID, err := VNetIDFromSubnetID(subnetID)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.GetSubnet(context.Background(), subnetID); err != nil {
			t.Fatalf("get subnet: %v", err)
		}
		if _, err := c.GetVNet(context.Background(), vnetID); err != nil {
			t.Fatalf("get vnet: %v", err)
		}
	}
	if s, v := simCalls(srv, armsim.OpGetSubnet), simCalls(srv, armsim.OpGetVNet); s != 1 || v != 1 {
		t.Fatalf("5 reads each made %d subnet and %d vnet GETs, want 1 and 1", s, v)
	}
}
