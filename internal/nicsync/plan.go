// Package nicsync is nicpool's NIC reconcile logic, shared by the operator
// (one NodeIPPool per node) and the standalone agent (its own VM's NIC): the
// pure plan of one NIC write (which nicpool IP configurations to remove and
// how many to add), the list of IPs a settled NIC offers, and the If-Match
// write loop that applies a plan. It knows nothing of Kubernetes clients or
// of who grants the IPs: callers pass the grant and account for each write
// through Hooks.
package nicsync

import (
	"crypto/rand"
	"net/netip"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
)

// MaxIPConfigsPerNIC is Azure's cap on IP configurations per NIC, primary
// and foreign ones included.
const MaxIPConfigsPerNIC = 256

// Config is the part of a NIC IP configuration the plan looks at.
type Config struct {
	Name    string
	IP      string
	Primary bool
	// Att is what the configuration carries besides its address.
	Att Attachment
}

// Owned reports whether nicpool created the configuration: its name carries
// the prefix and it is not the NIC's primary.
func (c Config) Owned() bool {
	return !c.Primary && strings.HasPrefix(c.Name, nicpoolv1.IPConfigurationPrefix)
}

// Input is what one pass decides from.
type Input struct {
	// Configs are all IP configurations on the NIC.
	Configs []Config
	// Released are the IPs the agent gave back (spec.ipsNotInUse): release
	// phase 1, the agent's promise never to hand them out again.
	Released map[string]bool
	// Published maps each IP the agent was offered (status.ips) to its
	// configuration name: what the agent saw when it released an IP.
	Published map[string]string
	// Grant is how many nicpool IPs the pool may hold after the write.
	Grant int
	// MaxAdds caps additions (after ARM refused a larger write because the
	// subnet or the NIC is full); negative means no cap.
	MaxAdds int
}

// Plan is the change one NIC write makes.
type Plan struct {
	// Remove are names of nicpool configurations whose IP the agent released.
	Remove []string
	// Add are names of new configurations.
	Add []string
	// Held is the number of nicpool configurations on the NIC before the write.
	Held int
	// Target is the number after it.
	Target int
	// NICCapped is true when Azure's per-NIC cap cut the additions.
	NICCapped bool
	// AddCapped is true when MaxAdds cut the additions.
	AddCapped bool
	// Attach are new attachments of kept configurations, by name: carried
	// by the same write (pod attachments).
	Attach map[string]Attachment
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Remove) == 0 && len(p.Add) == 0 && len(p.Attach) == 0 }

// Compute decides which configurations to remove and how many to add.
// Only nicpool configurations the agent released are removed (release
// phase 2): its IP is in Released and Published offered it under the same
// name (Azure may give a released address to a new configuration, which the
// agent never saw). Never the primary, a foreign one, or one still in use,
// even when Grant is below what the pool holds. newName returns a fresh
// candidate name.
func Compute(in Input, newName func() string) Plan {
	var p Plan
	taken := map[string]bool{}
	keep := 0
	for _, c := range in.Configs {
		taken[c.Name] = true
		if !c.Owned() {
			continue
		}
		p.Held++
		if c.IP != "" && in.Released[c.IP] && in.Published[c.IP] == c.Name {
			p.Remove = append(p.Remove, c.Name)
			continue
		}
		keep++
	}
	add := max(0, in.Grant-keep)
	if in.MaxAdds >= 0 && add > in.MaxAdds {
		add, p.AddCapped = in.MaxAdds, true
	}
	room := MaxIPConfigsPerNIC - (len(in.Configs) - len(p.Remove))
	if add > room {
		add, p.NICCapped = max(room, 0), true
	}
	for tries := 0; len(p.Add) < add && tries < 100*add; tries++ {
		name := newName()
		if taken[name] {
			continue
		}
		taken[name] = true
		p.Add = append(p.Add, name)
	}
	p.Target = keep + len(p.Add)
	return p
}

// NewConfigName returns nicpool-<10 random base32 characters>. Random names
// never collide with configurations left by an earlier, interrupted pass.
func NewConfigName() string {
	return nicpoolv1.IPConfigurationPrefix + strings.ToLower(rand.Text()[:10])
}

// Configs extracts the plan's view of the NIC's IP configurations.
func Configs(nic *armnetwork.Interface) []Config {
	var out []Config
	if nic == nil || nic.Properties == nil {
		return nil
	}
	for _, c := range nic.Properties.IPConfigurations {
		if c == nil {
			continue
		}
		ic := Config{Name: Deref(c.Name)}
		if c.Properties != nil {
			ic.IP = Deref(c.Properties.PrivateIPAddress)
			ic.Primary = c.Properties.Primary != nil && *c.Properties.Primary
			ic.Att = ConfigAttachment(c.Properties)
		}
		out = append(out, ic)
	}
	if len(out) == 1 {
		out[0].Primary = true // a NIC's only configuration is its primary.
	}
	return out
}

// PrimaryConfig returns the NIC's primary IP configuration, or nil.
func PrimaryConfig(nic *armnetwork.Interface) *armnetwork.InterfaceIPConfiguration {
	if nic == nil || nic.Properties == nil {
		return nil
	}
	cfgs := nic.Properties.IPConfigurations
	for _, c := range cfgs {
		if c != nil && c.Properties != nil && c.Properties.Primary != nil && *c.Properties.Primary {
			return c
		}
	}
	if len(cfgs) == 1 {
		return cfgs[0]
	}
	return nil
}

// Apply returns a copy of nic's IP configuration list with p applied:
// removed configurations dropped, the ones in p.Attach replaced by copies
// carrying their new attachments, the rest untouched, new ones added with
// dynamic allocation on subnetID and the primary's ASGs (Azure requires
// every IP configuration of a NIC in the same ASGs).
func Apply(nic *armnetwork.Interface, p Plan, subnetID string) []*armnetwork.InterfaceIPConfiguration {
	out := make([]*armnetwork.InterfaceIPConfiguration, 0, len(nic.Properties.IPConfigurations)+len(p.Add))
	for _, c := range nic.Properties.IPConfigurations {
		if c != nil && slices.Contains(p.Remove, Deref(c.Name)) {
			continue
		}
		if a, ok := p.Attach[Deref(c.Name)]; ok && c != nil {
			c = WithAttachment(c, a)
		}
		out = append(out, c)
	}
	var asgs []*armnetwork.ApplicationSecurityGroup
	for _, id := range NICASGs(nic) {
		asgs = append(asgs, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(id)})
	}
	for _, name := range p.Add {
		out = append(out, &armnetwork.InterfaceIPConfiguration{
			Name: to.Ptr(name),
			Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
				Primary:                   to.Ptr(false),
				PrivateIPAllocationMethod: to.Ptr(armnetwork.IPAllocationMethodDynamic),
				PrivateIPAddressVersion:   to.Ptr(armnetwork.IPVersionIPv4),
				Subnet:                    &armnetwork.Subnet{ID: to.Ptr(subnetID)},
				ApplicationSecurityGroups: asgs,
			},
		})
	}
	return out
}

// Publish lists the nicpool configurations on the NIC that the agent may
// be offered, sorted by IP: every one with an IP, adopted ones (left by an
// earlier run that crashed) included, except
//   - a configuration holding an address the agent still lists as released
//     for another configuration. It is withheld until the agent drops that
//     address, so the agent never mistakes it for the one it released;
//   - unless settled (the NIC's provisioningState is Succeeded), a
//     configuration published did not already list: a write still running,
//     or one whose operation ended Failed, lists its configurations on the
//     NIC before (or without) the fabric delivering them.
func Publish(configs []Config, released map[string]bool, published map[string]string, settled bool) []nicpoolv1.PoolIP {
	var out []nicpoolv1.PoolIP
	for _, c := range configs {
		if !c.Owned() || c.IP == "" {
			continue
		}
		if released[c.IP] && published[c.IP] != c.Name {
			continue
		}
		if !settled && published[c.IP] != c.Name {
			continue
		}
		out = append(out, nicpoolv1.PoolIP{IP: nicpoolv1.IPv4Address(c.IP), IPConfiguration: c.Name})
	}
	slices.SortFunc(out, func(a, b nicpoolv1.PoolIP) int {
		x, errX := netip.ParseAddr(string(a.IP))
		y, errY := netip.ParseAddr(string(b.IP))
		if errX != nil || errY != nil {
			return strings.Compare(string(a.IP), string(b.IP))
		}
		return x.Compare(y)
	})
	return out
}

// CountOwned returns the number of nicpool configurations on the NIC.
func CountOwned(configs []Config) int {
	n := 0
	for _, c := range configs {
		if c.Owned() {
			n++
		}
	}
	return n
}

// Deref returns *p, or "" for nil.
func Deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
