package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"

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
		return nil, fmt.Errorf("get nic %s: %w", nicID, err)
	}
	return &resp.Interface, nil
}

// UpdateNIC PUTs nic (its full body, as read and modified) with If-Match: *nic.Etag and waits
// for the long-running operation at most LROTimeout. When the wait runs out, the operation is
// remembered and a KindPending error returned; the next GetNIC, UpdateNIC or ResumePending on
// the NIC resumes it first.
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
	putCtx := policy.WithHTTPHeader(ctx, http.Header{"If-Match": []string{*nic.Etag}})
	poller, err := cl.BeginCreateOrUpdate(putCtx, id.ResourceGroup, id.Name, *nic, nil)
	if err != nil {
		return nil, fmt.Errorf("update nic %s: %w", nicID, err)
	}
	return c.wait(ctx, nicID, poller, "")
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
	poller, err := cl.BeginCreateOrUpdate(ctx, id.ResourceGroup, id.Name, armnetwork.Interface{},
		&armnetwork.InterfacesClientBeginCreateOrUpdateOptions{ResumeToken: tok})
	if err != nil {
		// A token that no longer parses can never be resumed; forget it.
		c.pending.done(nicID, tok)
		return nil, true, fmt.Errorf("resume pending update of nic %s: %w", nicID, err)
	}
	nic, err := c.wait(ctx, nicID, poller, tok)
	return nic, true, err
}

// PendingCount reports how many NIC PUTs are remembered as still running.
func (c *NICClient) PendingCount() int { return c.pending.count() }

// wait polls the operation for at most LROTimeout. oldToken is the token the poller was
// resumed from ("" for a fresh PUT); it is forgotten once the operation reaches a final state.
func (c *NICClient) wait(ctx context.Context, nicID string, poller *nicPoller, oldToken string) (*armnetwork.Interface, error) {
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.LROTimeout)
	defer cancel()
	resp, err := poller.PollUntilDone(waitCtx, &runtime.PollUntilDoneOptions{Frequency: c.cfg.LROPollInterval})
	if err == nil || poller.Done() {
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
	// Timed out, cancelled, or a poll request failed: the PUT may still be running on ARM.
	tok, terr := poller.ResumeToken()
	if terr != nil {
		return nil, fmt.Errorf("update nic %s: save resume token: %w (after %w)", nicID, terr, err)
	}
	if oldToken != "" && oldToken != tok {
		c.pending.done(nicID, oldToken)
	}
	c.pending.put(nicID, tok)
	return nil, fmt.Errorf("update nic %s: stopped waiting (lro timeout %s): %w: %w", nicID, c.cfg.LROTimeout, ErrPending, err)
}

// operationEnded reports whether err, from a poller that is done, is the operation's own
// failure: azcore reports it with the successful (2xx) poll response whose body says
// Failed or Canceled, whereas a failed final GET of the NIC carries that GET's error status.
func operationEnded(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode >= 200 && re.StatusCode < 300
}
