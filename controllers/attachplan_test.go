package controllers

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/nicsync"
)

const (
	tASG  = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"
	tPool = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/loadBalancers/lb/backendAddressPools/be"
	tPIP  = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/pip"
)

func TestAttachChanges(t *testing.T) {
	lb := attachment{Pools: []string{tPool}}
	withPIP := attachment{Pools: []string{tPool}, PublicIP: tPIP}
	cfgs := func(a5, a6 attachment) []nicsync.Config {
		return []nicsync.Config{
			{Name: "ipconfig1", IP: "10.0.0.4", Primary: true, Att: attachment{Pools: []string{tPool}}},
			{Name: "foreign", IP: "10.0.0.9", Att: attachment{PublicIP: tPIP}},
			{Name: "nicpool-a", IP: "10.0.0.5", Att: a5},
			{Name: "nicpool-b", IP: "10.0.0.6", Att: a6},
		}
	}
	pub := map[string]string{"10.0.0.5": "nicpool-a", "10.0.0.6": "nicpool-b"}
	web := []string{tASG}
	tests := []struct {
		name string
		in   attachInput
		want map[string]attachment
	}{
		{name: "nothing asked, nothing carried", in: attachInput{Configs: cfgs(attachment{}, attachment{}), Published: pub}, want: map[string]attachment{}},
		{name: "attach", in: attachInput{Configs: cfgs(attachment{}, attachment{}), Published: pub, Wants: map[string]attachment{"10.0.0.5": lb}},
			want: map[string]attachment{"nicpool-a": lb}},
		{name: "already carried, in another case", in: attachInput{Configs: cfgs(attachment{Pools: []string{"/SUBSCRIPTIONS/S/resourcegroups/RG/providers/microsoft.network/loadbalancers/LB/backendAddressPools/be"}}, attachment{}), Published: pub, Wants: map[string]attachment{"10.0.0.5": lb}},
			want: map[string]attachment{}},
		{name: "change", in: attachInput{Configs: cfgs(lb, attachment{}), Published: pub, Wants: map[string]attachment{"10.0.0.5": withPIP}},
			want: map[string]attachment{"nicpool-a": withPIP}},
		{name: "detach when the request is gone", in: attachInput{Configs: cfgs(lb, withPIP), Published: pub, Wants: map[string]attachment{"10.0.0.5": lb}},
			want: map[string]attachment{"nicpool-b": {}}},
		{name: "held keeps what it carries", in: attachInput{Configs: cfgs(lb, attachment{}), Published: pub, Wants: map[string]attachment{"10.0.0.5": withPIP, "10.0.0.6": lb}, Hold: map[string]bool{"10.0.0.5": true}},
			want: map[string]attachment{"nicpool-b": lb}},
		{name: "a removed configuration is not touched", in: attachInput{Configs: cfgs(lb, attachment{}), Published: pub, Removed: []string{"nicpool-a"}},
			want: map[string]attachment{}},
		{name: "a request for an IP published under another name is not applied", in: attachInput{Configs: cfgs(attachment{}, attachment{}), Published: map[string]string{"10.0.0.5": "nicpool-old"}, Wants: map[string]attachment{"10.0.0.5": lb}},
			want: map[string]attachment{}},
		{name: "every configuration carries the NIC's ASGs, asked or not", in: attachInput{Configs: cfgs(attachment{ASGs: web}, attachment{}), Published: pub, Wants: map[string]attachment{"10.0.0.6": {ASGs: web, PublicIP: tPIP}}, NICASGs: web},
			want: map[string]attachment{"nicpool-b": {ASGs: web, PublicIP: tPIP}}},
		{name: "a detach keeps the NIC's ASGs", in: attachInput{Configs: cfgs(attachment{ASGs: web, PublicIP: tPIP}, attachment{ASGs: web}), Published: pub, NICASGs: web},
			want: map[string]attachment{"nicpool-a": {ASGs: web}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := attachChanges(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("changes = %+v, want %+v", got, tt.want)
			}
			for name, a := range tt.want {
				if g, ok := got[name]; !ok || !g.Same(a) {
					t.Errorf("change of %s = %+v, want %+v", name, g, a)
				}
			}
		})
	}
}

func TestCheckAttachment(t *testing.T) {
	other := "/subscriptions/other/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/pip"
	tests := []struct {
		name    string
		a       attachment
		nicASGs []string
		reason  string
	}{
		{name: "same subscription", a: attachment{Pools: []string{tPool}, PublicIP: tPIP}},
		{name: "public IP of another subscription", a: attachment{PublicIP: other}, reason: ReasonOtherSubscription},
		{name: "the NIC's own ASGs", a: attachment{ASGs: []string{tASG}}, nicASGs: []string{tASG}},
		{name: "an ASG the NIC is not in", a: attachment{ASGs: []string{tASG}}, reason: ReasonASGsPerNIC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, msg := checkAttachment(tt.a, "s", tt.nicASGs)
			if reason != tt.reason || (reason != "" && msg == "") {
				t.Errorf("checkAttachment = %q (%s), want %q", reason, msg, tt.reason)
			}
		})
	}
}

func TestApplyPlanAttachesInPlaceOfCopies(t *testing.T) {
	orig := &armnetwork.InterfaceIPConfiguration{Name: to.Ptr("nicpool-a"), Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
		PrivateIPAddress: to.Ptr("10.0.0.5"), PublicIPAddress: &armnetwork.PublicIPAddress{ID: to.Ptr(tPIP)}}}
	nic := &armnetwork.Interface{Properties: &armnetwork.InterfacePropertiesFormat{IPConfigurations: []*armnetwork.InterfaceIPConfiguration{orig}}}
	out := nicsync.Apply(nic, nicsync.Plan{Add: []string{"nicpool-new"}, Attach: map[string]attachment{"nicpool-a": {ASGs: []string{tASG}, Pools: []string{tPool}}}}, "subnet")
	if len(out) != 2 {
		t.Fatalf("got %d configurations, want 2", len(out))
	}
	got := nicsync.ConfigAttachment(out[0].Properties)
	if !got.Same(attachment{ASGs: []string{tASG}, Pools: []string{tPool}}) || deref(out[0].Properties.PrivateIPAddress) != "10.0.0.5" {
		t.Errorf("written configuration carries %+v (ip %s)", got, deref(out[0].Properties.PrivateIPAddress))
	}
	if orig.Properties.PublicIPAddress == nil || len(orig.Properties.ApplicationSecurityGroups) != 0 {
		t.Errorf("the NIC as read was changed: %+v", nicsync.ConfigAttachment(orig.Properties))
	}
}

func TestAttachStatus(t *testing.T) {
	web := attachment{ASGs: []string{tASG}}
	configs := []nicsync.Config{
		{Name: "nicpool-a", IP: "10.0.0.5", Att: web},
		{Name: "nicpool-b", IP: "10.0.0.6"},
		{Name: "nicpool-c", IP: "10.0.0.7", Att: attachment{PublicIP: tPIP}},
		{Name: "nicpool-d", IP: "10.0.0.8"},
		{Name: "nicpool-e", IP: "10.0.0.10"},
	}
	published := []nicpoolv1.PoolIP{{IP: "10.0.0.5"}, {IP: "10.0.0.6"}, {IP: "10.0.0.7"}, {IP: "10.0.0.8"}, {IP: "10.0.0.10"}}
	ap := &attachPass{
		wants:   map[string]attachment{"10.0.0.5": web, "10.0.0.6": web, "10.0.0.8": {PublicIP: tPIP}},
		refused: map[string][2]string{"10.0.0.8": {"PublicIPAddressInUse", "in use"}},
		created: map[string]string{"10.0.0.9": tPIP},
	}
	got := attachStatus(configs, published, ap)
	want := map[string]string{
		"10.0.0.5": nicpoolv1.AttachmentApplied, "10.0.0.6": nicpoolv1.AttachmentPending,
		"10.0.0.7": nicpoolv1.AttachmentDetaching, "10.0.0.8": nicpoolv1.AttachmentRefused,
		"10.0.0.9": nicpoolv1.AttachmentDetaching,
	}
	var ips []string
	for _, st := range got {
		ips = append(ips, string(st.IP))
		if want[string(st.IP)] != st.State {
			t.Errorf("%s: state %s, want %s", st.IP, st.State, want[string(st.IP)])
		}
	}
	if !slices.Equal(ips, []string{"10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8", "10.0.0.9"}) {
		t.Errorf("entries for %v (an IP carrying and asking nothing has none; sorted by address)", ips)
	}
	if got[3].Reason != "PublicIPAddressInUse" {
		t.Errorf("refused entry has reason %q", got[3].Reason)
	}
}

func TestAttachmentRefusedAndBlame(t *testing.T) {
	web := attachment{ASGs: []string{tASG}}
	pip := attachment{PublicIP: tPIP}
	p := nicsync.Plan{Attach: map[string]attachment{"nicpool-a": web, "nicpool-b": pip}}
	configs := []nicsync.Config{{Name: "nicpool-a", IP: "10.0.0.5"}, {Name: "nicpool-b", IP: "10.0.0.6"}}
	inUse := &azcore.ResponseError{StatusCode: http.StatusBadRequest, ErrorCode: "PublicIPAddressInUse",
		RawResponse: &http.Response{StatusCode: http.StatusBadRequest, Request: testRequest()}}
	wrapped := errors.Join(errors.New("Public IP address "+tPIP+" is in use by another IP configuration"), inUse)
	if !attachmentRefused(p, wrapped) {
		t.Fatalf("a 400 on a write with attachment changes is not an attachment refusal")
	}
	if attachmentRefused(nicsync.Plan{}, wrapped) {
		t.Errorf("a write without attachment changes was held against attachments")
	}
	if got := blame(p, configs, wrapped); !slices.Equal(got, []string{"10.0.0.6"}) {
		t.Errorf("blamed %v, want the IP whose public IP ARM named", got)
	}
	anon := errors.Join(errors.New("something about the write"), inUse)
	got := blame(p, configs, anon)
	slices.Sort(got)
	if !slices.Equal(got, []string{"10.0.0.5", "10.0.0.6"}) {
		t.Errorf("blamed %v, want every changed IP when ARM names none", got)
	}
	if c := armCode(wrapped); c != "PublicIPAddressInUse" {
		t.Errorf("code %q", c)
	}
	throttled := &azcore.ResponseError{StatusCode: http.StatusTooManyRequests, RawResponse: &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{}, Request: testRequest()}}
	if attachmentRefused(p, throttled) {
		t.Errorf("a 429 was held against the attachments")
	}
}

func TestCreatedPublicIPName(t *testing.T) {
	a := createdPublicIPID("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n", "node-1", "10.0.0.5", "uid-1")
	if a != createdPublicIPID("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n", "node-1", "10.0.0.5", "uid-1") {
		t.Errorf("name not deterministic")
	}
	if a == createdPublicIPID("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n", "node-1", "10.0.0.5", "uid-2") {
		t.Errorf("the next pod on the IP gets the same public IP")
	}
	if !isCreatedPublicIP(a) || isCreatedPublicIP(tPIP) {
		t.Errorf("isCreatedPublicIP wrong for %s / %s", a, tPIP)
	}
}

// testRequest is the request an ARM error response answers.
func testRequest() *http.Request {
	req, _ := http.NewRequest(http.MethodPut, "https://management.example/nic", nil)
	return req
}
