package armsim_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestRawRequests(t *testing.T) {
	srv, err := armsim.New(armsim.Options{Topology: armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", "10.240.0.0/24", 1)})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	base := "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Network/networkInterfaces/vm-0-nic"
	tests := []struct {
		name, method, path string
		auth               bool
		wantStatus         int
		wantCode           string
	}{
		{name: "no authorization", method: "GET", path: base + "?api-version=2025-05-01", wantStatus: 401, wantCode: armsim.CodeAuthenticationFailed},
		{name: "ok", method: "GET", path: base + "?api-version=2025-05-01", auth: true, wantStatus: 200},
		{name: "case-insensitive path", method: "GET", path: strings.ToUpper(base) + "?api-version=x", auth: true, wantStatus: 200},
		{name: "missing api-version", method: "GET", path: base, auth: true, wantStatus: 400, wantCode: armsim.CodeMissingAPIVersion},
		{name: "unknown nic", method: "GET", path: base + "x?api-version=1", auth: true, wantStatus: 404, wantCode: armsim.CodeResourceNotFound},
		{name: "unknown resource group", method: "GET", path: strings.Replace(base, testRG, "rg-nope", 1) + "?api-version=1", auth: true, wantStatus: 404, wantCode: armsim.CodeResourceGroupNotFound},
		{name: "unknown subscription", method: "GET", path: strings.Replace(base, testSub, "other", 1) + "?api-version=1", auth: true, wantStatus: 404, wantCode: armsim.CodeSubscriptionNotFound},
		{name: "unknown operation", method: "GET", path: "/subscriptions/" + testSub + "/providers/Microsoft.Network/locations/westeurope/operations/nope?api-version=1", auth: true, wantStatus: 404, wantCode: armsim.CodeNotFound},
		{name: "unsupported method", method: "PATCH", path: base + "?api-version=1", auth: true, wantStatus: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth {
				req.Header.Set("Authorization", "Bearer anything")
			}
			rec := httptest.NewRecorder()
			srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if rec.Code == 200 && rec.Header().Get("x-ms-ratelimit-remaining-subscription-reads") == "" {
				t.Errorf("successful read lacks x-ms-ratelimit-remaining-subscription-reads")
			}
			if tc.wantCode != "" && !strings.Contains(rec.Body.String(), fmt.Sprintf(`"code":%q`, tc.wantCode)) {
				t.Errorf("body %s lacks code %s", rec.Body, tc.wantCode)
			}
		})
	}
}

func TestListPagingAndNetworks(t *testing.T) {
	topo := armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", "10.240.0.0/20", 250)
	e := startEnv(t, armsim.Options{Topology: topo})
	ctx := ctxT(t)
	pages, count := 0, 0
	for pager := e.nics.NewListPager(testRG, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		pages++
		count += len(page.Value)
	}
	if pages != 3 || count != 250 {
		t.Errorf("listed %d nics in %d pages, want 250 in 3", count, pages)
	}
	all := 0
	for pager := e.nics.NewListAllPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list all: %v", err)
		}
		all += len(page.Value)
	}
	if all != 250 {
		t.Errorf("listed %d nics subscription-wide, want 250", all)
	}
	v, err := e.vnet.Get(ctx, testRG, "vnet-0", nil)
	if err != nil {
		t.Fatalf("get vnet: %v", err)
	}
	if *v.Properties.AddressSpace.AddressPrefixes[0] != "10.240.0.0/16" || len(v.Properties.Subnets) != 1 {
		t.Errorf("vnet = %+v", v.Properties)
	}
	s, err := e.sub.Get(ctx, testRG, "vnet-0", "nodes", nil)
	if err != nil {
		t.Fatalf("get subnet: %v", err)
	}
	if *s.Properties.AddressPrefix != "10.240.0.0/20" {
		t.Errorf("subnet prefix = %s", *s.Properties.AddressPrefix)
	}
	_, err = e.sub.Get(ctx, testRG, "vnet-0", "nope", nil)
	if status, code := errCode(t, err); status != http.StatusNotFound || code != armsim.CodeNotFound {
		t.Errorf("unknown subnet got %d %s", status, code)
	}
}

func TestCreateAndDeleteNIC(t *testing.T) {
	e := startEnv(t, armsim.Options{})
	ctx := ctxT(t)
	subnetID := "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Network/virtualNetworks/vnet-0/subnets/nodes"
	nic := armnetwork.Interface{
		Location: to.Ptr("westeurope"),
		Properties: &armnetwork.InterfacePropertiesFormat{
			VirtualMachine: &armnetwork.SubResource{ID: to.Ptr("/ignored/vm")},
			IPConfigurations: []*armnetwork.InterfaceIPConfiguration{{
				Name: to.Ptr("ipconfig1"),
				Properties: &armnetwork.InterfaceIPConfigurationPropertiesFormat{
					Subnet: &armnetwork.Subnet{ID: to.Ptr(subnetID)},
				},
			}},
		},
	}
	p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "new-nic", nic, nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	res, err := p.PollUntilDone(ctx, fastPoll)
	if err != nil {
		t.Fatalf("poll create: %v", err)
	}
	if ip := *res.Properties.IPConfigurations[0].Properties.PrivateIPAddress; ip != "10.240.0.7" {
		t.Errorf("new nic got %s, want 10.240.0.7 (after three topology nics)", ip)
	}
	if res.Properties.VirtualMachine != nil {
		t.Errorf("virtualMachine is read-only but was set to %v", *res.Properties.VirtualMachine.ID)
	}
	if got := e.srv.Stats().Calls[armsim.OpPutNIC][http.StatusCreated]; got != 1 {
		t.Errorf("201 count = %d, want 1", got)
	}
	dp, err := e.nics.BeginDelete(ctx, testRG, "new-nic", nil)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := dp.PollUntilDone(ctx, fastPoll); err != nil {
		t.Fatalf("poll delete: %v", err)
	}
	_, err = e.nics.Get(ctx, testRG, "new-nic", nil)
	if status, code := errCode(t, err); status != http.StatusNotFound || code != armsim.CodeResourceNotFound {
		t.Fatalf("get deleted nic got %d %s, want 404 ResourceNotFound", status, code)
	}
}
