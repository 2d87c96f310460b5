package armsim_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/nicpool/nicpool/internal/armsim"
)

// imdsTopology has two VMs: vm-0 with two secondary IP configurations an
// administrator created, vm-1 with none.
func imdsTopology() *armsim.Topology {
	t := armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", "10.240.0.0/24", 2)
	t.NICs[0].PrimaryIP = "10.240.0.10"
	t.NICs[0].ExtraIPConfigs = []string{"docker-1", "docker-2"}
	t.NICs[1].PrimaryIP = "10.240.0.20"
	return t
}

func imdsGet(t *testing.T, h http.Handler, from string, mod func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://169.254.169.254/metadata/instance/network?api-version=2021-02-01", nil)
	req.RemoteAddr = from + ":40000"
	req.Header.Set("Metadata", "true")
	if mod != nil {
		mod(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestIMDSServesOnlyTheCallersVM(t *testing.T) {
	srv, err := armsim.New(armsim.Options{Topology: imdsTopology()})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.IMDSHandler()
	var secondaries []string
	for _, n := range srv.Snapshot().NICs {
		if n.Name == "vm-0-nic" {
			for _, c := range n.IPConfigs {
				if !c.Primary {
					secondaries = append(secondaries, c.IP)
				}
			}
		}
	}
	slices.Sort(secondaries)
	if len(secondaries) != 2 {
		t.Fatalf("vm-0 has secondaries %v, want 2", secondaries)
	}
	tests := []struct {
		name       string
		from       string
		mod        func(*http.Request)
		wantStatus int
		wantIPs    []string // primary first
	}{
		{name: "vm-0 from its primary", from: "10.240.0.10", wantStatus: 200, wantIPs: append([]string{"10.240.0.10"}, secondaries...)},
		{name: "vm-0 from a secondary", from: secondaries[0], wantStatus: 200, wantIPs: append([]string{"10.240.0.10"}, secondaries...)},
		{name: "vm-1 sees only itself", from: "10.240.0.20", wantStatus: 200, wantIPs: []string{"10.240.0.20"}},
		{name: "an address of no VM", from: "10.240.0.99", wantStatus: http.StatusForbidden},
		{name: "no Metadata header", from: "10.240.0.10", wantStatus: http.StatusBadRequest, mod: func(r *http.Request) { r.Header.Del("Metadata") }},
		{name: "Metadata: false", from: "10.240.0.10", wantStatus: http.StatusBadRequest, mod: func(r *http.Request) { r.Header.Set("Metadata", "false") }},
		{name: "X-Forwarded-For", from: "10.240.0.10", wantStatus: http.StatusBadRequest, mod: func(r *http.Request) { r.Header.Set("X-Forwarded-For", "10.240.0.20") }},
		{name: "no api-version", from: "10.240.0.10", wantStatus: http.StatusBadRequest, mod: func(r *http.Request) { r.URL.RawQuery = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := imdsGet(t, h, tt.from, tt.mod)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				var e map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
					t.Errorf("error body %q is not {\"error\": ...}", rec.Body)
				}
				return
			}
			var got armsim.IMDSNetwork
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("decode %s: %v", rec.Body, err)
			}
			if len(got.Interface) != 1 {
				t.Fatalf("interfaces = %d, want 1", len(got.Interface))
			}
			ifc := got.Interface[0]
			var ips []string
			for _, a := range ifc.IPv4.IPAddress {
				ips = append(ips, a.PrivateIPAddress)
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("ips = %v, want %v", ips, tt.wantIPs)
			}
			if len(ifc.IPv4.Subnet) != 1 || ifc.IPv4.Subnet[0] != (armsim.IMDSSubnet{Address: "10.240.0.0", Prefix: "24"}) {
				t.Errorf("subnet = %+v, want 10.240.0.0/24", ifc.IPv4.Subnet)
			}
			if len(ifc.MacAddress) != 12 {
				t.Errorf("macAddress %q is not 12 hex digits", ifc.MacAddress)
			}
		})
	}
}

// TestIMDSPerVMListener: behind a listener only vm-0 reaches, a request
// from vm-1's address (spoofed) is refused.
func TestIMDSPerVMListener(t *testing.T) {
	srv, err := armsim.New(armsim.Options{Topology: imdsTopology()})
	if err != nil {
		t.Fatal(err)
	}
	vm0 := "/subscriptions/" + testSub + "/resourceGroups/" + testRG + "/providers/Microsoft.Compute/virtualMachines/vm-0"
	h := srv.IMDSHandlerFor(vm0)
	if rec := imdsGet(t, h, "10.240.0.10", nil); rec.Code != http.StatusOK {
		t.Errorf("vm-0 on its own listener: %d %s", rec.Code, rec.Body)
	}
	if rec := imdsGet(t, h, "10.240.0.20", nil); rec.Code != http.StatusForbidden {
		t.Errorf("vm-1's address on vm-0's listener: %d, want 403", rec.Code)
	}
}
