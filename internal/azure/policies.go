package azure

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"golang.org/x/time/rate"
)

// limiterPolicy is a per-retry pipeline policy: every HTTP attempt, retries and LRO polls
// included, takes a token from the read (GET/HEAD) or write bucket first.
type limiterPolicy struct {
	read, write *rate.Limiter
}

func newLimiterPolicy(c Config) *limiterPolicy {
	return &limiterPolicy{
		read:  rate.NewLimiter(rate.Limit(c.ReadQPS), c.ReadBurst),
		write: rate.NewLimiter(rate.Limit(c.WriteQPS), c.WriteBurst),
	}
}

// Do waits for a token, honouring the request's context, then sends the request.
func (p *limiterPolicy) Do(req *policy.Request) (*http.Response, error) {
	lim, bucket := p.write, "write"
	if m := req.Raw().Method; m == http.MethodGet || m == http.MethodHead {
		lim, bucket = p.read, "read"
	}
	if err := waitToken(req.Raw().Context(), lim, bucket); err != nil {
		return nil, err
	}
	return req.Next()
}

// waitToken reserves a token and sleeps until it is due. When the context's deadline comes
// first it fails at once (returning the token) instead of sleeping in vain, with an error
// that classifies as KindThrottled and carries the wait as RetryAfter.
func waitToken(ctx context.Context, lim *rate.Limiter, bucket string) error {
	r := lim.Reserve()
	if !r.OK() {
		return &limiterError{bucket: bucket, wait: time.Hour, cause: context.DeadlineExceeded}
	}
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		r.Cancel()
		return &limiterError{bucket: bucket, wait: d, cause: context.DeadlineExceeded}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return &limiterError{bucket: bucket, wait: d, cause: ctx.Err()}
	}
}

// observerPolicy reports each HTTP attempt to Config.Observer.
type observerPolicy struct {
	observe func(op string, statusCode int, d time.Duration)
}

// Do sends the request and reports its operation name, status (0 on transport error) and duration.
func (p *observerPolicy) Do(req *policy.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := req.Next()
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	p.observe(opName(req.Raw().Method, req.Raw().URL.Path), code, time.Since(start))
	return resp, err
}

// opName maps an ARM request to a low-cardinality operation name for metrics.
func opName(method, path string) string {
	segs := strings.Split(strings.Trim(strings.ToLower(path), "/"), "/")
	last := func(n int) string { // n-th segment from the end, 1-based
		if len(segs) < n {
			return ""
		}
		return segs[len(segs)-n]
	}
	isGet := method == http.MethodGet
	switch {
	case isGet && (last(2) == "operations" || last(2) == "operationresults" || strings.Contains(path, "/operations/")):
		return "PollOperation"
	case last(2) == "networkinterfaces" && method == http.MethodPut:
		return "PutNIC"
	case isGet && last(2) == "networkinterfaces":
		return "GetNIC"
	case isGet && last(1) == "networkinterfaces":
		return "ListNICs"
	case isGet && last(2) == "subnets":
		return "GetSubnet"
	case isGet && last(2) == "virtualnetworks":
		return "GetVNet"
	}
	return "Other" + method
}
