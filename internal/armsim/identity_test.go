package armsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nicpool/nicpool/internal/armsim"
)

// identityToken asks IMDS for a managed identity token from the address from.
func identityToken(t *testing.T, srv *armsim.Server, from, query string) (*httptest.ResponseRecorder, armsim.IMDSToken) {
	t.Helper()
	rec := imdsGet(t, srv.IMDSHandler(), from, func(r *http.Request) {
		r.URL.Path = armsim.IMDSIdentityPath
		r.URL.RawQuery = query
	})
	var tok armsim.IMDSToken
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &tok); err != nil {
			t.Fatalf("decode token %s: %v", rec.Body, err)
		}
	}
	return rec, tok
}

func armDo(t *testing.T, srv *armsim.Server, method, nic, token string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	url := "https://management.azure.com/subscriptions/" + testSub + "/resourceGroups/" + testRG +
		"/providers/Microsoft.Network/networkInterfaces/" + nic + "?api-version=2024-05-01"
	req := httptest.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	return rec
}

// TestIdentityTokenWritesOnlyItsOwnNIC: IMDS issues each VM a token for its
// own identity (only with a resource, only for its own client ID); ARM lets
// that token read any NIC but write only the VM's own, answering 403
// AuthorizationFailed for another VM's NIC as Azure does, and 401 for a
// token it never issued.
func TestIdentityTokenWritesOnlyItsOwnNIC(t *testing.T) {
	srv, err := armsim.New(armsim.Options{Topology: imdsTopology()})
	if err != nil {
		t.Fatal(err)
	}
	const q = "api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F"
	if rec, _ := identityToken(t, srv, "10.240.0.10", "api-version=2018-02-01"); rec.Code != http.StatusBadRequest {
		t.Errorf("token without resource: status %d (%s), want 400", rec.Code, rec.Body)
	}
	if rec, _ := identityToken(t, srv, "10.240.0.10", q+"&client_id=00000000-0000-0000-0000-000000000000"); rec.Code != http.StatusBadRequest {
		t.Errorf("token of an identity the VM does not have: status %d (%s), want 400", rec.Code, rec.Body)
	}
	if rec, _ := identityToken(t, srv, "10.240.0.99", q); rec.Code != http.StatusForbidden {
		t.Errorf("token for an address of no VM: status %d (%s), want 403", rec.Code, rec.Body)
	}
	rec, tok := identityToken(t, srv, "10.240.0.10", q)
	if rec.Code != http.StatusOK || tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn == "" {
		t.Fatalf("vm-0's token: status %d, body %s", rec.Code, rec.Body)
	}
	if _, own := identityToken(t, srv, "10.240.0.10", q+"&client_id="+tok.ClientID); own.AccessToken == "" {
		t.Errorf("vm-0's token asked with its own client ID %s was refused", tok.ClientID)
	}
	read := func(nic string) []byte {
		rec := armDo(t, srv, http.MethodGet, nic, tok.AccessToken, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("vm-0's identity reads %s: status %d (%s), want 200", nic, rec.Code, rec.Body)
		}
		b, _ := io.ReadAll(rec.Body)
		return b
	}
	own, other := read("vm-0-nic"), read("vm-1-nic")
	if rec := armDo(t, srv, http.MethodPut, "vm-0-nic", tok.AccessToken, own); rec.Code/100 != 2 {
		t.Errorf("vm-0's identity writes its own NIC: status %d (%s), want 2xx", rec.Code, rec.Body)
	}
	rec = armDo(t, srv, http.MethodPut, "vm-1-nic", tok.AccessToken, other)
	if rec.Code != http.StatusForbidden || !bytes.Contains(rec.Body.Bytes(), []byte(armsim.CodeAuthorizationFailed)) {
		t.Errorf("vm-0's identity writes vm-1's NIC: status %d (%s), want 403 %s", rec.Code, rec.Body, armsim.CodeAuthorizationFailed)
	}
	if rec := armDo(t, srv, http.MethodDelete, "vm-0-nic", tok.AccessToken, nil); rec.Code != http.StatusForbidden {
		t.Errorf("vm-0's identity deletes its own NIC: status %d (%s), want 403 (it may only write it)", rec.Code, rec.Body)
	}
	if rec := armDo(t, srv, http.MethodGet, "vm-0-nic", "armsim-mi.forged", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("a token IMDS never issued: status %d (%s), want 401", rec.Code, rec.Body)
	}
	// Tokens that are not managed identity tokens keep every permission
	// (the operator's and the tests' credentials).
	if rec := armDo(t, srv, http.MethodPut, "vm-1-nic", "any-token", other); rec.Code/100 != 2 {
		t.Errorf("another credential writes vm-1's NIC: status %d (%s), want 2xx", rec.Code, rec.Body)
	}
}
