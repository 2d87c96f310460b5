package armsim

import (
	"net/http"
	"time"
)

// Op names an emulated ARM operation, for fault injection and statistics.
type Op string

// The operations armsim serves.
const (
	OpGetNIC        Op = "GetNIC"
	OpListNICs      Op = "ListNICs"
	OpPutNIC        Op = "PutNIC"
	OpDeleteNIC     Op = "DeleteNIC"
	OpGetVNet       Op = "GetVNet"
	OpGetSubnet     Op = "GetSubnet"
	OpPollOperation Op = "PollOperation"
)

type failSpec struct {
	n      int
	status int
	code   string
}

// faultState holds injected faults. Guarded by Server.mu.
type faultState struct {
	latency map[Op]time.Duration
	fail    map[Op]*failSpec
	hang    bool
	// failOps accepted PUT operations still to end Failed with failOpsCode.
	failOps     int
	failOpsCode string
}

func newFaultState() faultState {
	return faultState{latency: map[Op]time.Duration{}, fail: map[Op]*failSpec{}}
}

// SetLatency delays every later call of op by d before it is handled (0 removes it).
func (s *Server) SetLatency(op Op, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.faults.latency, op)
		return
	}
	s.faults.latency[op] = d
}

// FailNext makes the next n calls of op fail with status and an Azure error body carrying
// code (a default code per status when empty); 429s carry Retry-After: 1. n <= 0 clears it.
func (s *Server) FailNext(op Op, n int, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.faults.fail, op)
		return
	}
	if code == "" {
		code = defaultCode(status)
	}
	s.faults.fail[op] = &failSpec{n: n, status: status, code: code}
}

// HangLRO keeps newly accepted PUT operations InProgress while hang is true; setting it
// false lets them (and later ones) complete after PutLatency.
func (s *Server) HangLRO(hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.hang = hang
	if hang {
		return
	}
	for _, op := range s.ops {
		if op.status == opInProgress && op.due.IsZero() {
			s.scheduleLocked(op)
		}
	}
}

// FailNextOperations makes the next n accepted NIC PUT operations end Failed with code
// (default InternalServerError), as Azure's do when the platform fails to apply a write
// it accepted: the PUT itself answers 200/201 and the NIC reads Updating meanwhile; then
// the Azure-AsyncOperation status turns Failed with that error, and the NIC and all its
// IP configurations are left in provisioningState Failed, the requested configurations
// listed with their addresses allocated. A later PUT (Azure's remedy: re-apply the NIC as
// read) that succeeds returns it to Succeeded. n <= 0 clears the fault; a call replaces
// the previous count. Stats.OperationsFailed counts the operations that ended so.
func (s *Server) FailNextOperations(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		code = CodeInternalServerError
	}
	s.faults.failOps, s.faults.failOpsCode = max(0, n), code
}

// injectedLocked consumes one injected failure for op, if any. Requires s.mu.
func (s *Server) injectedLocked(op Op) *armError {
	f := s.faults.fail[op]
	if f == nil {
		return nil
	}
	f.n--
	if f.n <= 0 {
		delete(s.faults.fail, op)
	}
	e := errorf(f.status, f.code, "injected fault for %s", op)
	if f.status == http.StatusTooManyRequests {
		e.retryAfter = 1
	}
	return e
}

func defaultCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return CodeResourceNotFound
	case http.StatusConflict:
		return CodeAnotherOperationInProgress
	case http.StatusPreconditionFailed:
		return CodePreconditionFailed
	case http.StatusTooManyRequests:
		return CodeThrottled
	case http.StatusBadRequest:
		return CodeInvalidRequestFormat
	default:
		return CodeInternalServerError
	}
}
