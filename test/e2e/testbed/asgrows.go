package testbed

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	v1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/azure"
)

// Rows of the connectivity matrix for a pod in an application security group
// (docs/pod-attachments.md): Azure puts all IP configurations of a NIC in the
// same ASGs, so a pod is in ASG "web" by running on a node whose NIC is in it
// (nicpool copies the primary configuration's ASGs onto the configurations it
// adds). A subnet NSG lets on-premises reach ASG web on ProbePort and denies
// on-premises otherwise (and, as Azure's default rules deny the internet, opens
// ProbePort to it).

// ASGRowsSetup is what SetUpASGRows created.
type ASGRowsSetup struct {
	// ASG is the ARM ID of ASG "web".
	ASG string
	// In is the pod on the node in ASG web, Out the pod on a node outside it.
	In, Out *Pod
	// InState and OutState are the operator's answers to the pods' web
	// annotations: Applied, and Refused with its reason.
	InState, OutState v1.IPAttachmentStatus
}

// networkID is the ARM ID prefix of the testbed's network resources.
const networkID = "/subscriptions/" + SubscriptionID + "/resourceGroups/" + ResourceGroup + "/providers/Microsoft.Network/"

// CreateASG creates application security group name and returns its ID.
func (tb *Testbed) CreateASG(ctx context.Context, name string) (string, error) {
	f, err := tb.ARM()
	if err != nil {
		return "", err
	}
	p, err := f.NewApplicationSecurityGroupsClient().BeginCreateOrUpdate(ctx, ResourceGroup, name,
		armnetwork.ApplicationSecurityGroup{Location: to.Ptr(tb.Sim.Location())}, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, azurePoll)
	}
	if err != nil {
		return "", fmt.Errorf("create asg %s: %w", name, err)
	}
	return networkID + "applicationSecurityGroups/" + name, nil
}

// SetNICASGs puts vm's NIC in the ASGs asgs as an administrator does: every IP
// configuration (nicpool's included) in one write, because Azure refuses a NIC
// whose configurations differ in ASGs. With primaryOnly it changes the primary
// configuration alone, which ARM refuses.
func (tb *Testbed) SetNICASGs(ctx context.Context, vm *VM, asgs []string, primaryOnly bool) error {
	f, err := tb.ARM()
	if err != nil {
		return err
	}
	return tb.editNIC(ctx, f, vm, func(c *armnetwork.InterfaceIPConfiguration) {
		if primaryOnly && (c.Properties.Primary == nil || !*c.Properties.Primary) {
			return
		}
		c.Properties.ApplicationSecurityGroups = nil
		for _, id := range asgs {
			c.Properties.ApplicationSecurityGroups = append(c.Properties.ApplicationSecurityGroups, &armnetwork.ApplicationSecurityGroup{ID: to.Ptr(id)})
		}
	})
}

// editNIC read-modify-writes a VM's NIC, edit applied to each IP configuration, with
// If-Match on the etag read, so a write the operator made in between is never
// overwritten; it retries on 412 and 409, as any second writer of a NIC must.
func (tb *Testbed) editNIC(ctx context.Context, f *armnetwork.ClientFactory, vm *VM, edit func(*armnetwork.InterfaceIPConfiguration)) error {
	nics := f.NewInterfacesClient()
	for attempt := 0; ; attempt++ {
		got, err := nics.Get(ctx, ResourceGroup, vm.Name+"-nic", nil)
		if err != nil {
			return fmt.Errorf("get nic of %s: %w", vm.Name, err)
		}
		for _, c := range got.Properties.IPConfigurations {
			edit(c)
		}
		wctx := azpolicy.WithHTTPHeader(ctx, http.Header{"If-Match": []string{*got.Etag}})
		p, err := nics.BeginCreateOrUpdate(wctx, ResourceGroup, vm.Name+"-nic", got.Interface, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, azurePoll)
		}
		if err == nil {
			return nil
		}
		kind := azure.Classify(err)
		if attempt >= 50 || (kind != azure.KindPreconditionFailed && kind != azure.KindConflict) {
			return fmt.Errorf("update nic of %s: %w", vm.Name, err)
		}
		select {
		case <-time.After(100 * time.Millisecond): // the operator holds the NIC: back off
		case <-ctx.Done():
			return fmt.Errorf("update nic of %s: %w", vm.Name, ctx.Err())
		}
	}
}

// PutSubnetNSG creates NSG name with rules and associates it with the nodes'
// subnet (keeping the subnet's route table).
func (tb *Testbed) PutSubnetNSG(ctx context.Context, name string, rules ...*armnetwork.SecurityRule) error {
	f, err := tb.ARM()
	if err != nil {
		return err
	}
	p, err := f.NewSecurityGroupsClient().BeginCreateOrUpdate(ctx, ResourceGroup, name, armnetwork.SecurityGroup{
		Location: to.Ptr(tb.Sim.Location()), Properties: &armnetwork.SecurityGroupPropertiesFormat{SecurityRules: rules}}, nil)
	if err == nil {
		_, err = p.PollUntilDone(ctx, azurePoll)
	}
	if err != nil {
		return fmt.Errorf("create nsg %s: %w", name, err)
	}
	return tb.setSubnetNSG(ctx, f, &armnetwork.SecurityGroup{ID: to.Ptr(networkID + "networkSecurityGroups/" + name)})
}

// setSubnetNSG associates nsg (nil: none) with the nodes' subnet, keeping the rest.
func (tb *Testbed) setSubnetNSG(ctx context.Context, f *armnetwork.ClientFactory, nsg *armnetwork.SecurityGroup) error {
	c := f.NewSubnetsClient()
	sn, err := c.Get(ctx, ResourceGroup, "vnet-e2e", "nodes", nil)
	if err != nil {
		return fmt.Errorf("get subnet: %w", err)
	}
	sn.Properties.NetworkSecurityGroup = nsg
	sp, err := c.BeginCreateOrUpdate(ctx, ResourceGroup, "vnet-e2e", "nodes", sn.Subnet, nil)
	if err == nil {
		_, err = sp.PollUntilDone(ctx, azurePoll)
	}
	if err != nil {
		return fmt.Errorf("set the nsg of the nodes' subnet: %w", err)
	}
	return nil
}

// SecurityRule builds an NSG rule: src and dst are a prefix or service tag ("*"
// for any), or, for the destination, dstASG (an ASG ID) instead.
func SecurityRule(name string, prio int32, dir, access, proto, src, dst, port, dstASG string) *armnetwork.SecurityRule {
	p := &armnetwork.SecurityRulePropertiesFormat{
		Priority: to.Ptr(prio), Direction: to.Ptr(armnetwork.SecurityRuleDirection(dir)), Access: to.Ptr(armnetwork.SecurityRuleAccess(access)),
		Protocol: to.Ptr(armnetwork.SecurityRuleProtocol(proto)), SourceAddressPrefix: to.Ptr(src), SourcePortRange: to.Ptr("*"),
		DestinationPortRange: to.Ptr(port),
	}
	if dstASG != "" {
		p.DestinationApplicationSecurityGroups = []*armnetwork.ApplicationSecurityGroup{{ID: to.Ptr(dstASG)}}
	} else {
		p.DestinationAddressPrefix = to.Ptr(dst)
	}
	return &armnetwork.SecurityRule{Name: to.Ptr(name), Properties: p}
}

// SetUpASGRows creates ASG "web", puts in's node's NIC in it (every IP
// configuration), and NSG "nsg-asg" on the nodes' subnet: priority 100 allows
// on-premises to ASG web on ProbePort (TCP), priority 200 denies on-premises,
// priority 300 allows the internet on ProbePort (public IPs of pods and VMs).
// It annotates both pods as asking for ASG web and waits until the operator
// answered (in: Applied; out, whose node is not in web: Refused) and the fabric
// enforces it all; TearDownASGRows undoes the NSG and out's request. Probe servers
// must run in the pods; on-premises must route to the nodes' subnet (no UDR to None).
func (tb *Testbed) SetUpASGRows(ctx context.Context, in, out *Pod) (*ASGRowsSetup, error) {
	if in.VM == out.VM {
		return nil, fmt.Errorf("pods %s and %s are on one node: a NIC's IP configurations share their ASGs", in.Name, out.Name)
	}
	web, err := tb.CreateASG(ctx, "web")
	if err != nil {
		return nil, err
	}
	if err := tb.SetNICASGs(ctx, in.VM, []string{web}, false); err != nil {
		return nil, err
	}
	err = tb.PutSubnetNSG(ctx, "nsg-asg",
		SecurityRule("allow-onprem-web", 100, "Inbound", "Allow", "Tcp", OnPremCIDR, "", fmt.Sprint(ProbePort), web),
		SecurityRule("deny-onprem", 200, "Inbound", "Deny", "*", OnPremCIDR, "*", "*", ""),
		// A subnet NSG denies the internet by default (DenyAllInBound): public IPs
		// answer only on ports a rule opens.
		SecurityRule("allow-internet-probe", 300, "Inbound", "Allow", "Tcp", "Internet", "*", fmt.Sprint(ProbePort), ""))
	if err != nil {
		return nil, err
	}
	s := &ASGRowsSetup{ASG: web, In: in, Out: out}
	for _, p := range []*Pod{in, out} {
		if err := tb.AnnotatePod(ctx, p, v1.AnnotationApplicationSecurityGroups, web); err != nil {
			return nil, err
		}
	}
	st, err := tb.WaitAttachment(ctx, in.VM, in.IP, func(st *v1.IPAttachmentStatus) bool {
		// Applied with the ASG listed: not an earlier answer about other
		// attachments (a Service's backend pools).
		return AttachmentApplied(st) && len(st.ApplicationSecurityGroups) > 0
	})
	if err != nil {
		return nil, err
	}
	s.InState = *st
	st, err = tb.WaitAttachment(ctx, out.VM, out.IP, func(st *v1.IPAttachmentStatus) bool {
		return st != nil && st.State == v1.AttachmentRefused
	})
	if err != nil {
		return nil, err
	}
	s.OutState = *st
	return s, nil
}

// TearDownASGRows removes the ASG annotation of the pod outside ASG web (a refused
// request holds the pod's other attachments back) and NSG nsg-asg from the nodes'
// subnet (the rows after it, and Services, see the subnet as before), and waits until
// the operator no longer reports the request and the fabric enforces the subnet.
func (tb *Testbed) TearDownASGRows(ctx context.Context, s *ASGRowsSetup) error {
	f, err := tb.ARM()
	if err != nil {
		return err
	}
	if err := tb.AnnotatePod(ctx, s.Out, v1.AnnotationApplicationSecurityGroups, ""); err != nil {
		return err
	}
	if err := tb.setSubnetNSG(ctx, f, nil); err != nil {
		return err
	}
	// The IP may still carry other attachments (a Service's backend pools):
	// only the ASG request has to be gone.
	_, err = tb.WaitAttachment(ctx, s.Out.VM, s.Out.IP, func(st *v1.IPAttachmentStatus) bool {
		return st == nil || (st.State != v1.AttachmentRefused && len(st.ApplicationSecurityGroups) == 0)
	})
	return err
}

// ASGPaths are the rows for a SetUpASGRows: on-premises reaches the pod in ASG
// web on its port, and is denied the pod outside it.
func (tb *Testbed) ASGPaths(s *ASGRowsSetup) []Path {
	onprem := tb.Sites["onprem"]
	return []Path{
		{Name: "on-prem to pod in ASG web", From: onprem.NS, FromName: "on-prem", To: s.In.IP, ToName: s.In.Name, WantSeen: onprem.HostIP},
		{Name: "on-prem to pod outside web", From: onprem.NS, FromName: "on-prem", To: s.Out.IP, ToName: s.Out.Name, WantFail: true},
	}
}

// Describe says in a line what the operator answered to the pods' ASG requests.
func (s *ASGRowsSetup) Describe() string {
	state := func(p *Pod, st v1.IPAttachmentStatus) string {
		out := fmt.Sprintf("%s (%s, on %s): %s", p.Name, p.IP, p.VM.Name, st.State)
		if st.Reason != "" {
			out += " " + st.Reason
		}
		return out
	}
	return strings.Join([]string{state(s.In, s.InState), state(s.Out, s.OutState)}, "; ")
}
