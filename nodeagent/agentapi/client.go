package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client talks to the agent over its unix socket. It is safe for concurrent use.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the agent listening on socketPath.
func NewClient(socketPath string) *Client {
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	return &Client{
		socket: socketPath,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, "unix", socketPath)
			},
			DisableKeepAlives: true,
		}},
	}
}

// Allocate asks for the IP of an attachment; see AllocateRequest.
func (c *Client) Allocate(ctx context.Context, req AllocateRequest) (*AllocateResponse, error) {
	var resp AllocateResponse
	return &resp, c.do(ctx, http.MethodPost, PathAllocate, req, &resp)
}

// Release returns the IP of an attachment; see ReleaseRequest.
func (c *Client) Release(ctx context.Context, req ReleaseRequest) (*ReleaseResponse, error) {
	var resp ReleaseResponse
	return &resp, c.do(ctx, http.MethodPost, PathRelease, req, &resp)
}

// Check returns the agent's record of an attachment; a *Error with
// CodeNotFound when it has none.
func (c *Client) Check(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	var resp CheckResponse
	return &resp, c.do(ctx, http.MethodPost, PathCheck, req, &resp)
}

// Status reports whether the agent can serve pods.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var resp StatusResponse
	return &resp, c.do(ctx, http.MethodGet, PathStatus, nil, &resp)
}

// GC releases every attachment not listed in req.
func (c *Client) GC(ctx context.Context, req GCRequest) (*GCResponse, error) {
	var resp GCResponse
	return &resp, c.do(ctx, http.MethodPost, PathGC, req, &resp)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://nicpool-agent"+path, body)
	if err != nil {
		return fmt.Errorf("build %s request: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call nicpool agent at %s: %w", c.socket, err)
	}
	// The body is only read; a close error cannot lose anything.
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s response: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		apiErr := &Error{}
		if json.Unmarshal(data, apiErr) != nil || apiErr.Message == "" {
			return &Error{Code: CodeInternal, Message: fmt.Sprintf("nicpool agent answered %s: %s", resp.Status, bytes.TrimSpace(data))}
		}
		return apiErr
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

// IsNotFound reports whether err is the agent saying it has no record.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeNotFound
}
