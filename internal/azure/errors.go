package azure

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// This is the one file that interprets ARM errors; callers branch on Kind only.

// Kind is the class of an ARM failure that callers act on.
type Kind int

const (
	// KindOther is any failure not classified below (including nil errors).
	KindOther Kind = iota
	// KindNotFound means the resource (NIC, subnet, VNet, resource group) does not exist.
	KindNotFound
	// KindPreconditionFailed means the If-Match etag did not match: re-read and retry.
	KindPreconditionFailed
	// KindConflict means another operation is in progress on the resource (409).
	KindConflict
	// KindThrottled means ARM (429) or the client-side limiter refused the call for now.
	KindThrottled
	// KindSubnetFull means the subnet has no free address for a dynamic IP configuration.
	KindSubnetFull
	// KindTooManyIPConfigurations means the NIC would exceed Azure's IP configuration limit.
	KindTooManyIPConfigurations
	// KindPending means a PUT is still running on ARM; it is remembered and resumed later.
	KindPending
	// KindAuth means authentication or authorization failed (401/403, credential errors).
	KindAuth
	// KindOperationFailed means ARM accepted a PUT but its long-running operation ended
	// Failed (or Canceled) for a reason not classified above: the NIC is left in
	// provisioningState Failed with the write's IP configurations listed but not
	// necessarily in effect, until its configuration is re-applied.
	KindOperationFailed
	// KindInvalidReference means a reference in the write (subnet, application security
	// group, backend pool, public IP, NSG) names a resource that does not exist, is in
	// another region, or belongs to another virtual network than the rule requires. The
	// write cannot succeed until the reference changes.
	KindInvalidReference
	// KindInUse means the write wants a resource another one already holds (a public IP
	// associated with another IP configuration), or a delete met a resource still in use.
	KindInUse
	// KindASGMismatch means the IP configurations of one NIC would reference different
	// sets of application security groups, which Azure refuses: ASGs are per NIC.
	KindASGMismatch
)

var kindNames = [...]string{
	KindOther:                   "Other",
	KindNotFound:                "NotFound",
	KindPreconditionFailed:      "PreconditionFailed",
	KindConflict:                "Conflict",
	KindThrottled:               "Throttled",
	KindSubnetFull:              "SubnetFull",
	KindTooManyIPConfigurations: "TooManyIPConfigurations",
	KindPending:                 "Pending",
	KindAuth:                    "Auth",
	KindOperationFailed:         "OperationFailed",
	KindInvalidReference:        "InvalidReference",
	KindInUse:                   "InUse",
	KindASGMismatch:             "ASGMismatch",
}

// String returns the kind's name, e.g. "Throttled".
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// ErrPending is wrapped by errors returned while a NIC PUT is still running on ARM.
var ErrPending = errors.New("arm operation still in progress")

// ErrOperationFailed is wrapped by errors of a NIC PUT whose long-running operation ARM
// accepted and then ended Failed or Canceled.
var ErrOperationFailed = errors.New("arm operation ended failed")

// ErrNotFound is wrapped by lookups that found nothing without ARM saying 404 (FindNICForVM).
var ErrNotFound = errors.New("not found")

// ErrClientThrottled is wrapped by errors from the client-side rate limiter when the
// caller's context deadline comes before the limiter would admit the call.
var ErrClientThrottled = errors.New("client-side arm rate limit")

// limiterError is returned by the limiter policy; it carries the wait the limiter needed.
type limiterError struct {
	bucket string
	wait   time.Duration
	cause  error
}

func (e *limiterError) Error() string {
	return "wait for arm " + e.bucket + " rate limiter (needs " + e.wait.String() + "): " + e.cause.Error()
}

func (e *limiterError) Unwrap() []error { return []error{ErrClientThrottled, e.cause} }

// NonRetriable tells azcore's retry policy not to retry a call the limiter refused.
func (e *limiterError) NonRetriable() {}

// Classify reports the Kind of err; it unwraps wrapped errors.
func Classify(err error) Kind {
	if err == nil {
		return KindOther
	}
	if errors.Is(err, ErrPending) {
		return KindPending
	}
	if errors.Is(err, ErrNotFound) {
		return KindNotFound
	}
	if errors.Is(err, ErrClientThrottled) {
		return KindThrottled
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return KindAuth
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		if k, ok := kindByCode(re.ErrorCode); ok {
			return k
		}
	}
	// After the codes: an operation that ended Failed with, say, SubnetIsFull is acted on
	// as a full subnet; the NIC's Failed state is then found (and repaired) on the next read.
	if errors.Is(err, ErrOperationFailed) {
		return KindOperationFailed
	}
	if re == nil {
		return KindOther
	}
	return kindByStatus(re.StatusCode)
}

// kindByCode classifies ARM error codes. Codes win over status codes because a failed
// long-running operation surfaces with the status of the final poll (often 200).
func kindByCode(code string) (Kind, bool) {
	c := strings.ToLower(code)
	switch c {
	case "":
		return KindOther, false
	case "subnetisfull", "subnetfull":
		return KindSubnetFull, true
	case "anotheroperationinprogress", "conflict":
		return KindConflict, true
	case "preconditionfailed":
		return KindPreconditionFailed, true
	case "toomanyrequests", "subscriptionrequeststhrottled", "throttled":
		return KindThrottled, true
	case "resourcenotfound", "notfound", "resourcegroupnotfound", "parentresourcenotfound":
		return KindNotFound, true
	case "authorizationfailed", "authenticationfailed", "invalidauthenticationtoken",
		"invalidauthenticationtokentenant", "expiredauthenticationtoken", "linkedauthorizationfailed":
		return KindAuth, true
	case "invalidresourcereference", "applicationsecuritygroupmembersmustbeinsamevnet",
		"allapplicationsecuritygroupsinsecurityrulemustbefromsamevnet":
		return KindInvalidReference, true
	case "publicipaddressinuse", "publicipaddresscannotbedeleted":
		return KindInUse, true
	case "allipconfigurationsonanicmustbelongtothesameapplicationsecuritygroups":
		return KindASGMismatch, true
	}
	// "InUseNetworkSecurityGroupCannotBeDeleted", "InUseRouteTableCannotBeDeleted", ...
	if strings.HasPrefix(c, "inuse") && strings.HasSuffix(c, "cannotbedeleted") {
		return KindInUse, true
	}
	// Azure spells the per-NIC limit error in several ways across API versions
	// (e.g. "...IpConfigurationsCountExceedsLimit", "...MaxIpConfigurationsReached"), so match its shape.
	if strings.Contains(c, "ipconfiguration") &&
		(strings.Contains(c, "limit") || strings.Contains(c, "exceed") ||
			strings.Contains(c, "max") || strings.Contains(c, "toomany")) {
		return KindTooManyIPConfigurations, true
	}
	return KindOther, false
}

func kindByStatus(status int) Kind {
	switch status {
	case http.StatusNotFound:
		return KindNotFound
	case http.StatusPreconditionFailed:
		return KindPreconditionFailed
	case http.StatusConflict:
		return KindConflict
	case http.StatusTooManyRequests:
		return KindThrottled
	case http.StatusUnauthorized, http.StatusForbidden:
		return KindAuth
	}
	return KindOther
}

// RetryAfter returns how long ARM (or the client-side limiter) asked the caller to wait,
// from the Retry-After header (seconds or HTTP date) or retry-after-ms headers; for a
// KindPending error, when ARM expects the running write to be done.
func RetryAfter(err error) (time.Duration, bool) {
	var pe *pendingError
	if errors.As(err, &pe) && pe.retryAfter > 0 {
		return pe.retryAfter, true
	}
	var le *limiterError
	if errors.As(err, &le) {
		return le.wait, true
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		return 0, false
	}
	return retryAfterHeader(re.RawResponse.Header, time.Now())
}

// retryAfterHeader parses the retry headers ARM sends; now anchors HTTP dates.
func retryAfterHeader(h http.Header, now time.Time) (time.Duration, bool) {
	for _, name := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
				return time.Duration(ms) * time.Millisecond, true
			}
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}
