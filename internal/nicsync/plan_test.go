package nicsync

import (
	"fmt"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

// configs returns a NIC's configurations: the primary (10.0.0.4), the
// foreign ones and nicpool's own.
func configs(foreign []string, owned ...string) []Config {
	out := make([]Config, 0, 1+len(foreign)+len(owned))
	out = append(out, Config{Name: "ipconfig1", IP: "10.0.0.4", Primary: true})
	for i, ip := range foreign {
		out = append(out, Config{Name: fmt.Sprintf("foreign-%d", i), IP: ip})
	}
	for i, ip := range owned {
		out = append(out, Config{Name: fmt.Sprintf("nicpool-%03d", i), IP: ip})
	}
	return out
}

func seqNamer() func() string {
	i := 0
	return func() string {
		i++
		return fmt.Sprintf("nicpool-new%d", i/2) // every name comes twice: collides on purpose
	}
}

func TestCompute(t *testing.T) {
	many := make([]string, 250)
	for i := range many {
		many[i] = fmt.Sprintf("10.0.1.%d", i)
	}
	tests := []struct {
		name                      string
		in                        Input
		wantAdd, wantHeld, target int
		wantRemove                []string
		capped, addCapped         bool
	}{
		{name: "empty NIC grows to grant", in: Input{Configs: configs(nil), Grant: 2, MaxAdds: -1}, wantAdd: 2, target: 2},
		{name: "steady", in: Input{Configs: configs(nil, "10.0.0.5"), Grant: 1, MaxAdds: -1}, wantHeld: 1, target: 1},
		{name: "grant below held removes nothing unreleased", in: Input{Configs: configs(nil, "10.0.0.5", "10.0.0.6"), Grant: 0, MaxAdds: -1}, wantHeld: 2, target: 2},
		{name: "released IPs are removed", in: Input{MaxAdds: -1, Configs: configs(nil, "10.0.0.5", "10.0.0.6"), Grant: 1, Released: map[string]bool{"10.0.0.6": true}, Published: map[string]string{"10.0.0.6": "nicpool-001"}}, wantHeld: 2, target: 1, wantRemove: []string{"nicpool-001"}},
		{name: "released IP on a config the agent never saw is kept", in: Input{MaxAdds: -1, Configs: configs(nil, "10.0.0.5", "10.0.0.6"), Grant: 1, Released: map[string]bool{"10.0.0.6": true}, Published: map[string]string{"10.0.0.6": "nicpool-old"}}, wantHeld: 2, target: 2},
		{name: "remove and add in one plan", in: Input{MaxAdds: -1, Configs: configs(nil, "10.0.0.5", "10.0.0.6"), Grant: 3, Released: map[string]bool{"10.0.0.5": true}, Published: map[string]string{"10.0.0.5": "nicpool-000"}}, wantAdd: 2, wantHeld: 2, target: 3, wantRemove: []string{"nicpool-000"}},
		{name: "primary and foreign never removed", in: Input{MaxAdds: -1, Configs: configs([]string{"10.0.0.9"}), Grant: 0, Released: map[string]bool{"10.0.0.4": true, "10.0.0.9": true}, Published: map[string]string{"10.0.0.4": "ipconfig1", "10.0.0.9": "foreign-0"}}, target: 0},
		{name: "capped adds when subnet full, removals still made", in: Input{Configs: configs(nil, "10.0.0.5"), Grant: 5, MaxAdds: 0, Released: map[string]bool{"10.0.0.5": true}, Published: map[string]string{"10.0.0.5": "nicpool-000"}}, wantHeld: 1, target: 0, wantRemove: []string{"nicpool-000"}, addCapped: true},
		{name: "NIC cap of 256 with foreign configs", in: Input{MaxAdds: -1, Configs: configs([]string{"10.0.0.7", "10.0.0.8", "10.0.0.9", "10.0.0.10", "10.0.0.11", "10.0.0.12"}, many[:245]...), Grant: 250}, wantAdd: 4, wantHeld: 245, target: 249, capped: true},
		{name: "adds capped after a full subnet", in: Input{MaxAdds: 3, Configs: configs(nil), Grant: 10}, wantAdd: 3, target: 3, addCapped: true},
		{name: "a cap above the grant cuts nothing", in: Input{MaxAdds: 30, Configs: configs(nil), Grant: 10}, wantAdd: 10, target: 10},
		{name: "names never collide", in: Input{Configs: configs(nil), Grant: 3, MaxAdds: -1}, wantAdd: 3, target: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(tt.in, seqNamer())
			if len(p.Add) != tt.wantAdd || p.Held != tt.wantHeld || p.Target != tt.target || p.NICCapped != tt.capped {
				t.Errorf("plan = add %d held %d target %d capped %v, want add %d held %d target %d capped %v",
					len(p.Add), p.Held, p.Target, p.NICCapped, tt.wantAdd, tt.wantHeld, tt.target, tt.capped)
			}
			if p.AddCapped != tt.addCapped {
				t.Errorf("plan AddCapped = %v, want %v", p.AddCapped, tt.addCapped)
			}
			if !slices.Equal(p.Remove, tt.wantRemove) {
				t.Errorf("remove = %v, want %v", p.Remove, tt.wantRemove)
			}
			seen := map[string]bool{}
			for _, c := range tt.in.Configs {
				seen[c.Name] = true
			}
			for _, n := range p.Add {
				if seen[n] {
					t.Errorf("new name %q collides", n)
				}
				seen[n] = true
			}
		})
	}
}

func TestApplyKeepsOthers(t *testing.T) {
	nic := &armnetwork.Interface{Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: []*armnetwork.InterfaceIPConfiguration{
		{Name: to.Ptr("ipconfig1"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{Primary: to.Ptr(true), PrivateIPAddress: to.Ptr("10.0.0.4")}},
		{Name: to.Ptr("foreign"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{PrivateIPAddress: to.Ptr("10.0.0.9")}},
		{Name: to.Ptr("nicpool-a"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{PrivateIPAddress: to.Ptr("10.0.0.5")}},
		{Name: to.Ptr("nicpool-b"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{PrivateIPAddress: to.Ptr("10.0.0.6")}},
	}}}
	got := Apply(nic, Plan{Remove: []string{"nicpool-a"}, Add: []string{"nicpool-c"}}, "/sub/s")
	names := make([]string, 0, len(got))
	for _, c := range got {
		names = append(names, *c.Name)
	}
	if want := []string{"ipconfig1", "foreign", "nicpool-b", "nicpool-c"}; !slices.Equal(names, want) {
		t.Fatalf("configs = %v, want %v", names, want)
	}
	last := got[3].Properties
	if *last.PrivateIPAllocationMethod != armnetwork.IPAllocationMethodDynamic || *last.Subnet.ID != "/sub/s" || *last.Primary {
		t.Errorf("new config = %+v, want dynamic, non-primary on /sub/s", last)
	}
	owned := Publish(Configs(nic), nil, nil, true)
	if len(owned) != 2 || owned[0].IP != "10.0.0.5" || owned[1].IPConfiguration != "nicpool-b" {
		t.Errorf("ownedIPs = %+v", owned)
	}
}

func TestPublish(t *testing.T) {
	cfgs := configs([]string{"10.0.0.9"}, "10.0.0.5", "10.0.0.6", "")
	tests := []struct {
		name      string
		released  map[string]bool
		published map[string]string
		unsettled bool
		want      []string
	}{
		{name: "adopts unpublished configs", want: []string{"10.0.0.5", "10.0.0.6"}},
		{name: "released and published stays listed until removed", released: map[string]bool{"10.0.0.5": true}, published: map[string]string{"10.0.0.5": "nicpool-000"}, want: []string{"10.0.0.5", "10.0.0.6"}},
		{name: "recycled address withheld", released: map[string]bool{"10.0.0.5": true}, published: map[string]string{"10.0.0.5": "nicpool-gone"}, want: []string{"10.0.0.6"}},
		{name: "unsettled NIC: only what status already listed", unsettled: true, published: map[string]string{"10.0.0.6": "nicpool-001"}, want: []string{"10.0.0.6"}},
		{name: "unsettled NIC: an address listed under another name is withheld", unsettled: true, published: map[string]string{"10.0.0.5": "nicpool-gone"}, want: nil},
		{name: "unsettled NIC, nothing listed before", unsettled: true, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range Publish(cfgs, tt.released, tt.published, !tt.unsettled) {
				got = append(got, string(p.IP))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("published %v, want %v", got, tt.want)
			}
		})
	}
}
