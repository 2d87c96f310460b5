package armsim

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// opRetention is how long finished operations stay pollable.
const opRetention = 10 * time.Minute

// hungPollHint is the poll interval suggested while an operation is hung.
const hungPollHint = 200 * time.Millisecond

// asyncStatus is the Azure-AsyncOperation status body.
type asyncStatus struct {
	Name      string       `json:"name"`
	Status    string       `json:"status"`
	StartTime string       `json:"startTime"`
	EndTime   string       `json:"endTime,omitempty"`
	Error     *errorDetail `json:"error,omitempty"`
}

// newOperationLocked registers a PUT operation on n and schedules its completion. Requires s.mu.
func (s *Server) newOperationLocked(n *nic) *operation {
	now := time.Now()
	for id, op := range s.ops {
		if op.status != opInProgress && now.Sub(op.created) > opRetention {
			delete(s.ops, id)
		}
	}
	op := &operation{id: newUUID(), nicKey: key(n.rg, n.name), status: opInProgress, created: now}
	if s.faults.failOps > 0 {
		s.faults.failOps--
		op.failCode = s.faults.failOpsCode
	}
	s.ops[op.id] = op
	n.op = op
	if !s.faults.hang {
		s.scheduleLocked(op)
	}
	return op
}

// scheduleLocked arranges for op to succeed after PutLatency. Requires s.mu.
func (s *Server) scheduleLocked(op *operation) {
	if s.closed {
		return
	}
	op.due = time.Now().Add(s.opts.PutLatency)
	op.timer = time.AfterFunc(s.opts.PutLatency, func() { s.completeOp(op.id) })
}

// completeOp ends an operation (Succeeded, or Failed when a failure was injected) and moves
// its NIC to the same provisioning state; the etag changes with it.
func (s *Server) completeOp(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.ops[id]
	if op == nil || op.status != opInProgress || s.closed {
		return
	}
	state := stateSucceeded
	op.status = opSucceeded
	if op.failCode != "" {
		op.status, state = opFailed, stateFailed
		s.stats.opsFailed++
	}
	if n := s.nics[op.nicKey]; n != nil && n.op == op {
		n.op = nil
		n.state = state
		for _, c := range n.configs {
			c.state = state
		}
		n.etag = newEtag()
	}
	s.bumpLocked()
}

// asyncURL is the Azure-AsyncOperation URL for op.
func (s *Server) asyncURL(r *http.Request, op *operation) string {
	return fmt.Sprintf("%s/subscriptions/%s/providers/Microsoft.Network/locations/%s/operations/%s?api-version=%s",
		baseURL(r), s.sub, s.location, op.id, url.QueryEscape(r.URL.Query().Get("api-version")))
}

// setPollHint tells the client when to poll next. Azure sends Retry-After in seconds;
// armsim also sends retry-after-ms (honoured first by azcore) so tests need not wait seconds.
func setPollHint(w http.ResponseWriter, op *operation) {
	wait := hungPollHint
	if !op.due.IsZero() {
		wait = max(time.Millisecond, time.Until(op.due))
	}
	w.Header().Set("retry-after-ms", strconv.FormatInt(max(1, wait.Milliseconds()), 10))
	w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
}

func (s *Server) pollOperation(w http.ResponseWriter, _ *http.Request, p params) *armError {
	s.mu.Lock()
	op := s.ops[p.opID]
	if op == nil {
		s.mu.Unlock()
		return errorf(http.StatusNotFound, CodeNotFound, "Operation %s not found.", p.opID)
	}
	body := asyncStatus{Name: op.id, Status: op.status, StartTime: op.created.UTC().Format(time.RFC3339Nano)}
	switch op.status {
	case opInProgress:
		setPollHint(w, op)
	case opFailed:
		body.Error = &errorDetail{Code: op.failCode, Message: "injected failure of the network interface operation", Details: []errorDetail{}}
		fallthrough
	default:
		body.EndTime = op.due.UTC().Format(time.RFC3339Nano)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
	return nil
}
