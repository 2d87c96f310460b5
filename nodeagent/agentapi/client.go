package agentapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Client talks to the agent over its unix socket. It is safe for concurrent use.
//
// It speaks plain HTTP/1.0 (one request per connection, the body ending
// when the agent closes it) on a net.Conn instead of using net/http: the
// CNI plugin, a process started for every ADD and DEL, links this client,
// and net/http with its TLS stack made each start about 2 ms slower.
type Client struct {
	socket string
	dialer net.Dialer
}

// NewClient returns a client for the agent listening on socketPath.
func NewClient(socketPath string) *Client {
	return &Client{socket: socketPath, dialer: net.Dialer{Timeout: 2 * time.Second}}
}

// answerMargin is the part of a caller's time that Allocate keeps for the
// answer to travel back: a tenth of it, at least 100 ms and at most 2 s.
func answerMargin(left time.Duration) time.Duration {
	return min(max(left/10, 100*time.Millisecond), 2*time.Second)
}

// waitFor is how long the agent may wait for a free IP when the caller has
// left to wait in all.
func waitFor(left time.Duration) time.Duration {
	return left - answerMargin(left)
}

// Methods the agent's routes use.
const (
	methodGet  = "GET"
	methodPost = "POST"
)

// Allocate asks for the IP of an attachment; see AllocateRequest.
// Unless req sets WaitMillis, a deadline of ctx sets it to the time left
// less answerMargin, so the agent's answer arrives before the deadline.
func (c *Client) Allocate(ctx context.Context, req AllocateRequest) (*AllocateResponse, error) {
	if deadline, ok := ctx.Deadline(); ok && req.WaitMillis == 0 {
		req.WaitMillis = max(1, waitFor(time.Until(deadline)).Milliseconds())
	}
	var resp AllocateResponse
	return &resp, c.do(ctx, methodPost, PathAllocate, req, &resp)
}

// Release returns the IP of an attachment; see ReleaseRequest.
func (c *Client) Release(ctx context.Context, req ReleaseRequest) (*ReleaseResponse, error) {
	var resp ReleaseResponse
	return &resp, c.do(ctx, methodPost, PathRelease, req, &resp)
}

// Check returns the agent's record of an attachment; a *Error with
// CodeNotFound when it has none.
func (c *Client) Check(ctx context.Context, req CheckRequest) (*CheckResponse, error) {
	var resp CheckResponse
	return &resp, c.do(ctx, methodPost, PathCheck, req, &resp)
}

// Status reports whether the agent can serve pods.
func (c *Client) Status(ctx context.Context) (*StatusResponse, error) {
	var resp StatusResponse
	return &resp, c.do(ctx, methodGet, PathStatus, nil, &resp)
}

// GC releases every attachment not listed in req.
func (c *Client) GC(ctx context.Context, req GCRequest) (*GCResponse, error) {
	var resp GCResponse
	return &resp, c.do(ctx, methodPost, PathGC, req, &resp)
}

// maxResponseBytes bounds a response (headers and body).
const maxResponseBytes = 1 << 20

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", path, err)
		}
		body = b
	}
	status, data, err := c.roundTrip(ctx, method, path, body)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return fmt.Errorf("call nicpool agent at %s: %w", c.socket, err)
	}
	if status/100 != 2 {
		apiErr := &Error{}
		if json.Unmarshal(data, apiErr) != nil || apiErr.Message == "" {
			return &Error{Code: CodeInternal, Message: fmt.Sprintf("nicpool agent answered %d: %s", status, bytes.TrimSpace(data))}
		}
		return apiErr
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

// roundTrip sends one request on a new connection and returns the status
// code and body; ctx's deadline and cancellation end it.
func (c *Client) roundTrip(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	conn, err := c.dialer.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return 0, nil, err
	}
	// Closing ends a read or write blocked when ctx ends (its deadline
	// included), so a failure then is reported as ctx.Err().
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer func() { _ = conn.Close() }()
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.0\r\nHost: nicpool-agent\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return 0, nil, fmt.Errorf("send %s request: %w", path, err)
	}
	return readResponse(bufio.NewReader(io.LimitReader(conn, maxResponseBytes)), path)
}

// readResponse parses an HTTP/1.x response whose body ends at
// Content-Length or, without one, where the connection ends.
func readResponse(r *bufio.Reader, path string) (int, []byte, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("read %s response status: %w", path, err)
	}
	parts := strings.SplitN(strings.TrimSpace(line), " ", 3)
	if len(parts) < 2 || !strings.HasPrefix(parts[0], "HTTP/1.") {
		return 0, nil, fmt.Errorf("read %s response: malformed status line %q", path, strings.TrimSpace(line))
	}
	status, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0, nil, fmt.Errorf("read %s response: malformed status code %q", path, parts[1])
	}
	length := -1
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, nil, fmt.Errorf("read %s response headers: %w", path, err)
		}
		h = strings.TrimSpace(h)
		if h == "" {
			break
		}
		name, value, _ := strings.Cut(h, ":")
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			if length, err = strconv.Atoi(strings.TrimSpace(value)); err != nil || length < 0 {
				return 0, nil, fmt.Errorf("read %s response: malformed content length %q", path, value)
			}
		}
	}
	var data []byte
	if length >= 0 {
		data = make([]byte, length)
		_, err = io.ReadFull(r, data)
	} else {
		data, err = io.ReadAll(r)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read %s response: %w", path, err)
	}
	return status, data, nil
}

// IsNotFound reports whether err is the agent saying it has no record.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeNotFound
}
