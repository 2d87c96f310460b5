package armsim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestParseTopology(t *testing.T) {
	const good = `
subscriptionId: sub-1
vnets:
- resourceGroup: rg
  name: vnet
  addressSpace: [10.1.0.0/16]
  subnets:
  - {name: nodes, cidr: 10.1.0.0/24}
nics:
- {resourceGroup: rg, name: n0, vmName: vm0, vnet: vnet, subnet: nodes, primaryIP: 10.1.0.10, extraIPConfigs: [foreign]}
`
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "valid", yaml: good},
		{name: "unknown field", yaml: good + "bogus: 1\n", wantErr: "unknown field"},
		{name: "missing subscription", yaml: strings.Replace(good, "subscriptionId: sub-1", "", 1), wantErr: "subscriptionId is required"},
		{name: "bad cidr", yaml: strings.Replace(good, "cidr: 10.1.0.0/24", "cidr: 10.1.0.0/33", 1), wantErr: "parse cidr"},
		{name: "host bits", yaml: strings.Replace(good, "cidr: 10.1.0.0/24", "cidr: 10.1.0.1/24", 1), wantErr: "host bits"},
		{name: "subnet outside space", yaml: strings.Replace(good, "cidr: 10.1.0.0/24", "cidr: 10.2.0.0/24", 1), wantErr: "not inside the address space"},
		{name: "unknown subnet", yaml: strings.Replace(good, "subnet: nodes", "subnet: pods", 1), wantErr: `subnet "pods" not found`},
		{name: "unknown vnet", yaml: strings.Replace(good, "vnet: vnet,", "vnet: other,", 1), wantErr: `vnet "other" not found`},
		{name: "reserved primary", yaml: strings.Replace(good, "10.1.0.10", "10.1.0.2", 1), wantErr: "reserves"},
		{name: "duplicate nic", yaml: good + "- {resourceGroup: rg, name: n0, vnet: vnet, subnet: nodes}\n", wantErr: "duplicate nic"},
		{name: "duplicate extra config", yaml: strings.Replace(good, "[foreign]", "[foreign, foreign]", 1), wantErr: "duplicate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := armsim.ParseTopology([]byte(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parse error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestDemoTopologyLoads(t *testing.T) {
	topo, err := armsim.LoadTopology(filepath.Join("..", "..", "test", "topologies", "demo.yaml"))
	if err != nil {
		t.Fatalf("load demo topology: %v", err)
	}
	srv, err := armsim.New(armsim.Options{Topology: topo})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if n := len(srv.Snapshot().NICs); n != 3 {
		t.Errorf("demo has %d nics, want 3", n)
	}
}

func TestLoadTopologyMissingFile(t *testing.T) {
	_, err := armsim.LoadTopology(filepath.Join(t.TempDir(), "absent.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("load absent file: %v, want a not-exist error", err)
	}
}

func TestTopologyStaticAndForeignConfigs(t *testing.T) {
	topo := &armsim.Topology{
		SubscriptionID: testSub,
		VNets: []armsim.VNetSpec{{ResourceGroup: testRG, Name: "v", AddressSpace: []string{"10.9.0.0/16"},
			Subnets: []armsim.SubnetSpec{{Name: "s", CIDR: "10.9.0.0/24"}}}},
		NICs: []armsim.NICSpec{
			{ResourceGroup: testRG, Name: "a", VMName: "vm-a", VNet: "v", Subnet: "s", ExtraIPConfigs: []string{"foreign"}},
			{ResourceGroup: testRG, Name: "b", VMName: "vm-b", VNet: "v", Subnet: "s", PrimaryIP: "10.9.0.4"},
		},
	}
	srv, err := armsim.New(armsim.Options{Topology: topo})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	got := map[string]string{}
	for _, n := range srv.Snapshot().NICs {
		for _, c := range n.IPConfigs {
			got[n.Name+"/"+c.Name] = c.IP
		}
	}
	want := map[string]string{"a/ipconfig1": "10.9.0.5", "a/foreign": "10.9.0.6", "b/ipconfig1": "10.9.0.4"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all %v)", k, got[k], v, got)
		}
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}
