package armsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error codes armsim returns, as Azure Resource Manager and the network resource provider
// spell them. Clients classify errors by these.
const (
	CodeResourceNotFound           = "ResourceNotFound"
	CodeNotFound                   = "NotFound"
	CodeResourceGroupNotFound      = "ResourceGroupNotFound"
	CodeSubscriptionNotFound       = "SubscriptionNotFound"
	CodePreconditionFailed         = "PreconditionFailed"
	CodeAnotherOperationInProgress = "AnotherOperationInProgress"
	CodeThrottled                  = "SubscriptionRequestsThrottled"
	CodeSubnetIsFull               = "SubnetIsFull"
	// CodeTooManyIPConfigurations is returned for more than MaxIPConfigsPerNIC configurations.
	// Azure's exact code could not be confirmed from public sources; match on HTTP 400 plus
	// this constant rather than on a literal.
	CodeTooManyIPConfigurations = "MaxIpConfigurationsPerNicReached"
	// CodePrimaryIPConfigRequired is returned when a PUT removes or changes the primary configuration.
	CodePrimaryIPConfigRequired  = "NicMustHavePrimaryIpConfiguration"
	CodePrivateIPAddressInUse    = "PrivateIPAddressInUse"
	CodePrivateIPNotInSubnet     = "PrivateIPAddressNotInSubnet"
	CodeInvalidResourceReference = "InvalidResourceReference"
	CodeInvalidRequestFormat     = "InvalidRequestFormat"
	CodeInvalidRequestContent    = "InvalidRequestContent"
	CodeMissingAPIVersion        = "MissingApiVersionParameter"
	CodeAuthenticationFailed     = "AuthenticationFailed"
	CodeInternalServerError      = "InternalServerError"

	// Codes of the attachments of IP configurations (application security groups, load
	// balancer backend pools, public IPs) and of the resources they reference. Those
	// marked "seen" were confirmed from public error reports; the others are armsim's
	// spelling of a rule Azure documents, and clients should match them through
	// internal/azure's Classify rather than as literals.

	// CodePublicIPAddressInUse (seen): a public IP is already associated with another
	// IP configuration or load balancer frontend.
	CodePublicIPAddressInUse = "PublicIPAddressInUse"
	// CodeASGsDifferOnNIC (seen): all IP configurations of a NIC must reference the
	// same set of application security groups.
	CodeASGsDifferOnNIC = "AllIpConfigurationsOnANicMustBelongToTheSameApplicationSecurityGroups"
	// CodeASGsInRuleFromDifferentVNets (seen): a security rule's ASGs have members in
	// different virtual networks.
	CodeASGsInRuleFromDifferentVNets = "AllApplicationSecurityGroupsInSecurityRuleMustBeFromSameVnet"
	// CodeASGInDifferentVNet: an ASG's members must all be in one virtual network.
	CodeASGInDifferentVNet = "ApplicationSecurityGroupMembersMustBeInSameVnet"
	// CodeInUseNSGCannotBeDeleted (seen): the NSG is associated with a subnet or NIC.
	CodeInUseNSGCannotBeDeleted = "InUseNetworkSecurityGroupCannotBeDeleted"
	// CodeInUseRouteTableCannotBeDeleted (seen): the route table is associated with a subnet.
	CodeInUseRouteTableCannotBeDeleted = "InUseRouteTableCannotBeDeleted"
	// CodePublicIPAddressCannotBeDeleted (seen): the public IP is still associated.
	CodePublicIPAddressCannotBeDeleted = "PublicIPAddressCannotBeDeleted"
	// CodeInUseASGCannotBeDeleted: the ASG still has members or is used by a rule.
	CodeInUseASGCannotBeDeleted = "InUseApplicationSecurityGroupCannotBeDeleted"
	// CodeInUseLBCannotBeDeleted: a backend pool of the load balancer has members.
	CodeInUseLBCannotBeDeleted = "InUseLoadBalancerCannotBeDeleted"
	// CodeInUseBackendPoolCannotBeDeleted: a PUT removes a backend pool that has members.
	CodeInUseBackendPoolCannotBeDeleted = "InUseBackendAddressPoolCannotBeDeleted"
	// CodePublicIPCountLimitReached (seen): the simulated public range is exhausted.
	CodePublicIPCountLimitReached = "PublicIPCountLimitReached"
	// CodeStandardSkuPublicIPMustBeStatic: a Standard public IP must be Static.
	CodeStandardSkuPublicIPMustBeStatic = "StandardSkuPublicIPAddressesMustBeStatic"
	// Security rule validation.
	CodeSecurityRuleConflict             = "SecurityRuleConflict"
	CodeSecurityRuleInvalidParameter     = "SecurityRuleParameterInvalid"
	CodeSecurityRuleInvalidPriority      = "SecurityRuleInvalidPriority"
	CodeSecurityRuleInvalidPortRange     = "SecurityRuleInvalidPortRange"
	CodeSecurityRuleInvalidAddressPrefix = "SecurityRuleInvalidAddressPrefix"
	// CodeInvalidServiceNameOnServiceEndpoint: a subnet's service endpoint names a
	// service that offers none (armsim's spelling).
	CodeInvalidServiceNameOnServiceEndpoint = "InvalidServiceNameOnServiceEndpoint"
	// CodeDuplicateServiceEndpoint: a subnet lists a service endpoint twice (armsim's spelling).
	CodeDuplicateServiceEndpoint = "DuplicateServiceEndpointOnSubnet"
	// Route validation.
	CodeInvalidRouteAddressPrefix = "InvalidRouteAddressPrefix"
	CodeInvalidNextHopIP          = "InvalidNextHopIpAddress"
)

// errInvalidPrefix is returned by ParsePrefixOrAddr.
var errInvalidPrefix = errors.New("not an IPv4 address or CIDR")

// armError is an error answered to the client with Azure's body shape.
type armError struct {
	status     int
	code       string
	message    string
	retryAfter int // seconds; sent as Retry-After when > 0
}

func (e *armError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func errorf(status int, code, format string, args ...any) *armError {
	return &armError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// errorBody is Azure's error envelope: {"error":{"code":..,"message":..}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Details []errorDetail `json:"details"`
}

func writeError(w http.ResponseWriter, e *armError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."`)
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.retryAfter))
	}
	writeJSON(w, e.status, errorBody{Error: errorDetail{Code: e.code, Message: e.message, Details: []errorDetail{}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"InternalServerError","message":"encode response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
