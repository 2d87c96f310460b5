package armsim

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// IMDSIdentityPath is IMDS's managed identity token endpoint, which
// azidentity's ManagedIdentityCredential calls on a VM.
const IMDSIdentityPath = "/metadata/identity/oauth2/token"

// identityTokenPrefix starts every managed identity token the emulator
// issues. ARM requests with another bearer token keep the emulator's old
// behaviour: any token is accepted with every permission (the operator's
// and the tests' credentials).
const identityTokenPrefix = "armsim-mi."

// identityTokenLifetime is how long an issued token is valid, as Azure's
// (a day).
const identityTokenLifetime = 24 * time.Hour

// CodeAuthorizationFailed is ARM's 403 when the caller's identity lacks
// the permission.
const CodeAuthorizationFailed = "AuthorizationFailed"

// identityToken is what the emulator knows of a token it issued: whose VM
// identity it is.
type identityToken struct {
	vmID    string
	expires time.Time
}

// IMDSToken is the body of a managed identity token response, in Azure's
// shape (numbers as strings).
type IMDSToken struct {
	AccessToken  string `json:"access_token"`
	ClientID     string `json:"client_id"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	ExtExpiresIn string `json:"ext_expires_in"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
}

// IdentityClientID is the client ID of vmID's system-assigned identity
// (derived from the VM's ID, stable across runs).
func IdentityClientID(vmID string) string {
	h := sha256.Sum256([]byte(strings.ToLower(vmID)))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// issueIdentityToken answers GET /metadata/identity/oauth2/token for the
// VM vmID (already identified by its source address): a bearer token for
// its system-assigned identity, which ARM lets write only the VM's own
// NICs. A client_id other than the VM's identity is not found, as on a VM
// without that user-assigned identity.
func (s *Server) issueIdentityToken(r *http.Request, vmID string) (int, any) {
	q := r.URL.Query()
	resource := q.Get("resource")
	if resource == "" {
		return http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required audience parameter not specified"}
	}
	clientID := IdentityClientID(vmID)
	if id := q.Get("client_id"); id != "" && !strings.EqualFold(id, clientID) {
		return http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"}
	}
	if q.Get("mi_res_id") != "" || q.Get("object_id") != "" || q.Get("msi_res_id") != "" {
		return http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"}
	}
	now := time.Now()
	tok := identityTokenPrefix + strings.ReplaceAll(newUUID(), "-", "")
	s.mu.Lock()
	if s.tokens == nil {
		s.tokens = map[string]identityToken{}
	}
	for t, it := range s.tokens {
		if now.After(it.expires) {
			delete(s.tokens, t)
		}
	}
	s.tokens[tok] = identityToken{vmID: vmID, expires: now.Add(identityTokenLifetime)}
	s.mu.Unlock()
	secs := strconv.Itoa(int(identityTokenLifetime.Seconds()))
	return http.StatusOK, IMDSToken{
		AccessToken: tok, ClientID: clientID, ExpiresIn: secs, ExtExpiresIn: secs,
		ExpiresOn: strconv.FormatInt(now.Add(identityTokenLifetime).Unix(), 10),
		NotBefore: strconv.FormatInt(now.Unix(), 10), Resource: resource, TokenType: "Bearer",
	}
}

// authorize checks a request that carries a managed identity token: the
// token must be one the emulator issued and still valid (401 otherwise),
// and a VM's identity may read, but write only its own NIC (403
// AuthorizationFailed otherwise, as ARM answers an identity without a role
// assignment on the scope). Other tokens pass.
func (s *Server) authorize(token string, rt *route, path string) *armError {
	if !strings.HasPrefix(token, identityTokenPrefix) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.tokens[token]
	if !ok || time.Now().After(it.expires) {
		return errorf(http.StatusUnauthorized, CodeAuthenticationFailed, "authentication failed: the access token is invalid or has expired")
	}
	if !rt.write {
		return nil
	}
	if rt.op == OpPutNIC {
		if n := s.nics[strings.ToLower(rt.p.rg+"/"+rt.p.name)]; n != nil && n.vmID != "" && strings.EqualFold(n.vmID, it.vmID) {
			return nil
		}
	}
	return errorf(http.StatusForbidden, CodeAuthorizationFailed,
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		IdentityClientID(it.vmID), IdentityClientID(it.vmID), writeAction(rt.op), strings.TrimSuffix(path, "/"))
}

// writeAction names the ARM permission a write operation needs, for the
// error message.
func writeAction(op Op) string {
	switch op {
	case OpPutNIC:
		return "Microsoft.Network/networkInterfaces/write"
	case OpDeleteNIC:
		return "Microsoft.Network/networkInterfaces/delete"
	case OpPutSubnet:
		return "Microsoft.Network/virtualNetworks/subnets/write"
	}
	return "Microsoft.Network/" + string(op)
}
