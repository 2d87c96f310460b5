package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// armResponseError builds the error azcore builds from a real ARM error response.
func armResponseError(status int, code string, header http.Header) error {
	body := `{"error":{"code":"` + code + `","message":"test"}}`
	if code == "" {
		body = ""
	}
	if header == nil {
		header = http.Header{}
	}
	req, _ := http.NewRequest(http.MethodGet, "https://management.azure.com/x", nil)
	resp := &http.Response{
		StatusCode: status, Status: http.StatusText(status), Header: header,
		Body: io.NopCloser(strings.NewReader(body)), Request: req,
	}
	return runtime.NewResponseError(resp)
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{name: "nil", err: nil, want: KindOther},
		{name: "plain error", err: errors.New("boom"), want: KindOther},
		{name: "404 ResourceNotFound", err: armResponseError(404, "ResourceNotFound", nil), want: KindNotFound},
		{name: "404 no body", err: armResponseError(404, "", nil), want: KindNotFound},
		{name: "resource group not found", err: armResponseError(404, "ResourceGroupNotFound", nil), want: KindNotFound},
		{name: "412", err: armResponseError(412, "PreconditionFailed", nil), want: KindPreconditionFailed},
		{name: "409 another op", err: armResponseError(409, "AnotherOperationInProgress", nil), want: KindConflict},
		{name: "429", err: armResponseError(429, "SubscriptionRequestsThrottled", nil), want: KindThrottled},
		{name: "429 no code", err: armResponseError(429, "", nil), want: KindThrottled},
		{name: "subnet full 400", err: armResponseError(400, "SubnetIsFull", nil), want: KindSubnetFull},
		{name: "subnet full from final lro poll (200)", err: armResponseError(200, "SubnetIsFull", nil), want: KindSubnetFull},
		{name: "too many ip configs (armsim)", err: armResponseError(400, "MaxIpConfigurationsPerNicReached", nil), want: KindTooManyIPConfigurations},
		{name: "too many ip configs (variant)", err: armResponseError(400, "NetworkInterfaceIpConfigurationsCountExceedsLimit", nil), want: KindTooManyIPConfigurations},
		{name: "other 400", err: armResponseError(400, "InvalidRequestFormat", nil), want: KindOther},
		{name: "missing referenced resource", err: armResponseError(400, "InvalidResourceReference", nil), want: KindInvalidReference},
		{name: "asg members in another vnet", err: armResponseError(400, "ApplicationSecurityGroupMembersMustBeInSameVnet", nil), want: KindInvalidReference},
		{name: "rule asgs from several vnets", err: armResponseError(400, "AllApplicationSecurityGroupsInSecurityRuleMustBeFromSameVnet", nil), want: KindInvalidReference},
		{name: "public ip associated elsewhere", err: armResponseError(400, "PublicIPAddressInUse", nil), want: KindInUse},
		{name: "public ip still associated", err: armResponseError(400, "PublicIPAddressCannotBeDeleted", nil), want: KindInUse},
		{name: "nsg in use", err: armResponseError(400, "InUseNetworkSecurityGroupCannotBeDeleted", nil), want: KindInUse},
		{name: "route table in use", err: armResponseError(400, "InUseRouteTableCannotBeDeleted", nil), want: KindInUse},
		{name: "asg sets differ on a nic (not a per-nic limit)", err: armResponseError(400, "AllIpConfigurationsOnANicMustBelongToTheSameApplicationSecurityGroups", nil), want: KindASGMismatch},
		{name: "500", err: armResponseError(500, "InternalServerError", nil), want: KindOther},
		{name: "401", err: armResponseError(401, "InvalidAuthenticationToken", nil), want: KindAuth},
		{name: "403", err: armResponseError(403, "AuthorizationFailed", nil), want: KindAuth},
		{name: "credential failure", err: &azidentity.AuthenticationFailedError{}, want: KindAuth},
		{name: "wrapped 412", err: fmt.Errorf("update nic x: %w", armResponseError(412, "PreconditionFailed", nil)), want: KindPreconditionFailed},
		{name: "pending wins over cause", err: fmt.Errorf("x: %w: %w", ErrPending, armResponseError(429, "", nil)), want: KindPending},
		{name: "client-side limiter", err: &limiterError{bucket: "write", wait: time.Second, cause: context.DeadlineExceeded}, want: KindThrottled},
		{name: "not found sentinel", err: fmt.Errorf("find nic: %w", ErrNotFound), want: KindNotFound},
		{name: "operation ended failed", err: fmt.Errorf("update nic x: %w: %w", ErrOperationFailed, armResponseError(200, "InternalServerError", nil)), want: KindOperationFailed},
		{name: "operation ended failed with a known code", err: fmt.Errorf("update nic x: %w: %w", ErrOperationFailed, armResponseError(200, "SubnetIsFull", nil)), want: KindSubnetFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Fatalf("Classify(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Now()
	httpDate := now.Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		err    error
		want   time.Duration
		slack  time.Duration
		wantOK bool
	}{
		{name: "seconds", err: armResponseError(429, "", http.Header{"Retry-After": {"17"}}), want: 17 * time.Second, wantOK: true},
		{name: "http date", err: armResponseError(429, "", http.Header{"Retry-After": {httpDate}}), want: 90 * time.Second, slack: 3 * time.Second, wantOK: true},
		{name: "date in the past", err: armResponseError(429, "", http.Header{"Retry-After": {"Mon, 02 Jan 2006 15:04:05 GMT"}}), want: 0, wantOK: true},
		{name: "retry-after-ms wins", err: armResponseError(429, "", http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"9"}}), want: 250 * time.Millisecond, wantOK: true},
		{name: "409 with header", err: armResponseError(409, "AnotherOperationInProgress", http.Header{"Retry-After": {"5"}}), want: 5 * time.Second, wantOK: true},
		{name: "wrapped", err: fmt.Errorf("get nic: %w", armResponseError(429, "", http.Header{"Retry-After": {"3"}})), want: 3 * time.Second, wantOK: true},
		{name: "no header", err: armResponseError(429, "", nil), wantOK: false},
		{name: "garbage header", err: armResponseError(429, "", http.Header{"Retry-After": {"soon"}}), wantOK: false},
		{name: "negative", err: armResponseError(429, "", http.Header{"Retry-After": {"-4"}}), wantOK: false},
		{name: "not an arm error", err: errors.New("x"), wantOK: false},
		{name: "nil", err: nil, wantOK: false},
		{name: "limiter", err: &limiterError{bucket: "read", wait: 4 * time.Second, cause: context.Canceled}, want: 4 * time.Second, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := RetryAfter(tt.err)
			if ok != tt.wantOK {
				t.Fatalf("RetryAfter ok = %v, want %v (d=%s)", ok, tt.wantOK, got)
			}
			if diff := got - tt.want; diff < -tt.slack || diff > tt.slack {
				t.Fatalf("RetryAfter = %s, want %s ± %s", got, tt.want, tt.slack)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	seen := map[string]bool{}
	for k := KindOther; k <= KindOperationFailed; k++ {
		s := k.String()
		if s == "" || strings.HasPrefix(s, "Kind(") || seen[s] {
			t.Fatalf("kind %d has bad or duplicate name %q", int(k), s)
		}
		seen[s] = true
	}
	if got := Kind(99).String(); got != "Kind(99)" {
		t.Fatalf("Kind(99).String() = %q", got)
	}
}
