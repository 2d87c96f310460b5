package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
)

type nicPoller = runtime.Poller[armnetwork.InterfacesClientCreateOrUpdateResponse]

// GetNIC reads a NIC. If a PUT on it is pending, it first tries to finish that; while the
// PUT is still running it returns a KindPending error rather than a NIC in flux.
func (c *NICClient) GetNIC(ctx context.Context, nicID string) (*armnetwork.Interface, error) {
	id, err := ParseNICID(nicID)
	if err != nil {
		return nil, err
	}
	if nic, had, err := c.ResumePending(ctx, nicID); had {
		switch {
		case err == nil && nic != nil:
			// The resumed PUT ended with the poller's own GET of the NIC, made a
			// moment ago: a second GET would only spend the read budget.
			return nic, nil
		case Classify(err) == KindPending:
			return nil, err
		}
	}
	// A pending PUT that failed is dropped: the fresh GET below shows what ARM really holds.
	cl, err := c.interfaces(id.SubscriptionID)
	if err != nil {
		return nil, err
	}
	resp, err := cl.Get(ctx, id.ResourceGroup, id.Name, nil)
	if err != nil {
		if Classify(err) == KindNotFound {
			c.index.forgetNIC(nicID)
		}
		return nil, fmt.Errorf("get nic %s: %w", nicID, err)
	}
	return &resp.Interface, nil
}

// UpdateNIC PUTs nic (its full body, as read and modified) with If-Match: *nic.Etag and waits
// for the long-running operation at most LROTimeout (see wait). A PUT whose response is
// already terminal returns that response's NIC, with no further read. When the wait runs
// out, the operation is remembered and a KindPending error returned, carrying as
// RetryAfter when ARM expects it to be done; the next GetNIC, UpdateNIC or ResumePending
// on the NIC resumes it first.
func (c *NICClient) UpdateNIC(ctx context.Context, nic *armnetwork.Interface) (*armnetwork.Interface, error) {
	if nic == nil || nic.ID == nil {
		return nil, errors.New("update nic: nic or its id is nil")
	}
	nicID := *nic.ID
	if nic.Etag == nil || *nic.Etag == "" {
		// Without an etag a read-modify-write could silently overwrite a concurrent change.
		return nil, fmt.Errorf("update nic %s: nic has no etag; read it with GetNIC first", nicID)
	}
	id, err := ParseNICID(nicID)
	if err != nil {
		return nil, fmt.Errorf("update nic: %w", err)
	}
	if _, had, err := c.ResumePending(ctx, nicID); had && Classify(err) == KindPending {
		return nil, err
	}
	cl, err := c.interfaces(id.SubscriptionID)
	if err != nil {
		return nil, err
	}
	// Only the PUT carries If-Match; the LRO polls and final GET must not (they would 412).
	var putResp *http.Response
	putCtx := policy.WithHTTPHeader(ctx, http.Header{"If-Match": []string{*nic.Etag}})
	putCtx = runtime.WithCaptureResponse(putCtx, &putResp)
	poller, err := cl.BeginCreateOrUpdate(putCtx, id.ResourceGroup, id.Name, *nic, nil)
	if err != nil {
		return nil, fmt.Errorf("update nic %s: %w", nicID, err)
	}
	if poller.Done() && putResp != nil {
		// ARM completed the write synchronously: the PUT's response is the NIC's new
		// state, so no poll and no final GET are spent on it.
		if done, ok := succeededBody(putResp); ok {
			return done, nil
		}
	}
	return c.wait(ctx, nicID, poller, "", putResp)
}

// succeededBody decodes a PUT response whose body shows provisioningState Succeeded.
func succeededBody(resp *http.Response) (*armnetwork.Interface, bool) {
	var nic armnetwork.Interface
	if err := runtime.UnmarshalAsJSON(resp, &nic); err != nil || nic.ID == nil || nic.Etag == nil {
		return nil, false
	}
	if NICProvisioning(&nic) != ProvisioningSucceeded || NICProvisioningState(&nic) == "" {
		return nil, false
	}
	return &nic, true
}

// ResumePending finishes a PUT on nicID that an earlier call gave up waiting for. It reports
// whether there was one; the NIC is returned when it has now completed successfully. A PUT
// still running after LROTimeout yields a KindPending error (and stays remembered).
func (c *NICClient) ResumePending(ctx context.Context, nicID string) (*armnetwork.Interface, bool, error) {
	tok, ok := c.pending.get(nicID)
	if !ok {
		return nil, false, nil
	}
	id, err := ParseNICID(nicID)
	if err != nil {
		return nil, true, err
	}
	cl, err := c.interfaces(id.SubscriptionID)
	if err != nil {
		return nil, true, err
	}
	// Callers come back when ARM expected the write done: then one GET of the NIC is
	// both the poll and the result (ARM runs one operation on a NIC at a time, so a NIC
	// that reads Succeeded has finished it). Only a write still running, or one that
	// ended Failed (the operation says why), is polled through its operation.
	if resp, err := cl.Get(ctx, id.ResourceGroup, id.Name, nil); err == nil &&
		NICProvisioning(&resp.Interface) == ProvisioningSucceeded && NICProvisioningState(&resp.Interface) != "" {
		c.pending.done(nicID, tok)
		return &resp.Interface, true, nil
	}
	poller, err := cl.BeginCreateOrUpdate(ctx, id.ResourceGroup, id.Name, armnetwork.Interface{},
		&armnetwork.InterfacesClientBeginCreateOrUpdateOptions{ResumeToken: tok})
	if err != nil {
		// A token that no longer parses can never be resumed; forget it.
		c.pending.done(nicID, tok)
		return nil, true, fmt.Errorf("resume pending update of nic %s: %w", nicID, err)
	}
	nic, err := c.wait(ctx, nicID, poller, tok, nil)
	return nic, true, err
}

// PendingCount reports how many NIC PUTs are remembered as still running.
func (c *NICClient) PendingCount() int { return c.pending.count() }

// Poll pacing: without a Retry-After from ARM, the first poll comes firstPollDelay after
// the PUT and the gap doubles up to LROPollInterval, so a write that ARM finishes in a few
// hundred milliseconds is seen done within about that time, not a whole interval later.
const firstPollDelay = 50 * time.Millisecond

// wait drives the poller itself (azcore's PollUntilDone sleeps at least a second between
// polls and cannot give up before a long Retry-After): it polls when ARM's Retry-After
// (or, without one, a short doubling backoff) says, for at most LROTimeout. When the next
// poll would fall after that, it stops at once rather than sleep in vain and remembers the
// operation. last
// is the PUT's response (nil when resumed: the caller already waited, so it polls at
// once). A call that stops before its first poll returns a KindPending error whose
// RetryAfter is ARM's hint. oldToken is the token the poller was resumed from ("" for a fresh PUT); it is
// forgotten once the operation reaches a final state.
func (c *NICClient) wait(ctx context.Context, nicID string, poller *nicPoller, oldToken string, last *http.Response) (*armnetwork.Interface, error) {
	deadline := time.Now().Add(c.cfg.LROTimeout)
	backoff, next := firstPollDelay, time.Duration(0)
	if last != nil {
		next = backoff
	}
	var err error
	for polls := 0; !poller.Done(); polls++ {
		if last != nil {
			if ra, ok := retryAfterHeader(last.Header, time.Now()); ok {
				next = ra
			}
		}
		if time.Now().Add(next).After(deadline) {
			// Only a call that gave up before its first poll passes ARM's hint on: after
			// polls (an operation that hangs), the caller's own interval paces it.
			hint := next
			if polls > 0 {
				hint = 0
			}
			return nil, c.stopWaiting(nicID, poller, oldToken, hint, context.DeadlineExceeded)
		}
		if err = sleepCtx(ctx, next); err != nil {
			return nil, c.stopWaiting(nicID, poller, oldToken, 0, err)
		}
		if last, err = poller.Poll(ctx); err != nil {
			// A poll request failed: the PUT may still be running on ARM.
			return nil, c.stopWaiting(nicID, poller, oldToken, 0, err)
		}
		next, backoff = backoff, min(2*backoff, c.cfg.LROPollInterval)
	}
	resp, err := poller.Result(ctx)
	if oldToken != "" {
		c.pending.done(nicID, oldToken)
	}
	if err != nil && operationEnded(err) {
		// The operation reached a terminal state other than Succeeded: ARM applied
		// (some of) the write and left the NIC in provisioningState Failed.
		return nil, fmt.Errorf("update nic %s: %w: %w", nicID, ErrOperationFailed, err)
	}
	if err != nil {
		return nil, fmt.Errorf("update nic %s: %w", nicID, err)
	}
	return &resp.Interface, nil
}

// stopWaiting remembers a PUT that may still be running on ARM and returns the KindPending
// error for it; retryAfter (0: unknown) is when ARM expects it to be done.
func (c *NICClient) stopWaiting(nicID string, poller *nicPoller, oldToken string, retryAfter time.Duration, cause error) error {
	tok, terr := poller.ResumeToken()
	if terr != nil {
		return fmt.Errorf("update nic %s: save resume token: %w (after %w)", nicID, terr, cause)
	}
	if oldToken != "" && oldToken != tok {
		c.pending.done(nicID, oldToken)
	}
	c.pending.put(nicID, tok)
	return &pendingError{nicID: nicID, wait: c.cfg.LROTimeout, retryAfter: retryAfter, cause: cause}
}

// pendingError says a NIC PUT is still running; it wraps ErrPending and the reason the
// wait stopped, and carries when ARM expects the operation to be done.
type pendingError struct {
	nicID      string
	wait       time.Duration
	retryAfter time.Duration
	cause      error
}

func (e *pendingError) Error() string {
	return fmt.Sprintf("update nic %s: stopped waiting (lro wait %s): %s: %s", e.nicID, e.wait, ErrPending, e.cause)
}

func (e *pendingError) Unwrap() []error { return []error{ErrPending, e.cause} }

// sleepCtx sleeps d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// operationEnded reports whether err, from a poller that is done, is the operation's own
// failure: azcore reports it with the successful (2xx) poll response whose body says
// Failed or Canceled, whereas a failed final GET of the NIC carries that GET's error status.
func operationEnded(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 200 && re.StatusCode < 300
}
