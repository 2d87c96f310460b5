package testbed

import (
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
)

// ARMFault is a kind of ARM misbehaviour the fault front injects.
type ARMFault string

// The faults ARMFaults can inject. Each is what Azure does now and then; the
// operator must survive all of them without leaking or doubling an IP.
const (
	// FaultThrottle answers 429 with Retry-After: 1 without touching state.
	FaultThrottle ARMFault = "429-throttled"
	// FaultConflict answers a PUT 409 AnotherOperationInProgress.
	FaultConflict ARMFault = "409-conflict"
	// FaultPrecondition answers a PUT 412 as if the etag had moved.
	FaultPrecondition ARMFault = "412-precondition"
	// FaultServerError answers 500 before anything happened.
	FaultServerError ARMFault = "500-before-write"
	// FaultErrorAfterWrite applies a PUT and then answers 500: the write
	// happened, the operator was told it did not.
	FaultErrorAfterWrite ARMFault = "500-after-write"
	// FaultSlowLRO keeps every PUT operation in progress for 1 to 3 s.
	FaultSlowLRO ARMFault = "slow-lro"
	// FaultLatency delays the request by 0.3 to 1.5 s.
	FaultLatency ARMFault = "latency"
	// FaultOperationFailed lets a PUT be accepted and its long-running
	// operation end Failed, leaving the NIC in provisioningState Failed.
	FaultOperationFailed ARMFault = "operation-failed"
)

// DefaultARMFaults are the kinds ARMFaults injects unless told otherwise.
var DefaultARMFaults = []ARMFault{FaultThrottle, FaultConflict, FaultPrecondition, FaultServerError,
	FaultErrorAfterWrite, FaultSlowLRO, FaultLatency}

// ARMFaults is an HTTPS front for armsim that the operator talks to when
// Config.ARMFaults is set. While a rate is set, that share of the requests
// meets a fault drawn from the enabled kinds; otherwise it passes requests
// through untouched.
type ARMFaults struct {
	sim *armsim.Server
	srv *httptest.Server

	mu     sync.Mutex
	rate   float64
	kinds  []ARMFault
	rnd    *rand.Rand
	counts map[ARMFault]int
}

func newARMFaults(sim *armsim.Server, seed uint64) *ARMFaults {
	f := &ARMFaults{sim: sim, kinds: DefaultARMFaults, rnd: rand.New(rand.NewPCG(seed, seed^0x5eed)), counts: map[ARMFault]int{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	return f
}

// URL is the front's base URL.
func (f *ARMFaults) URL() string { return f.srv.URL }

func (f *ARMFaults) writeCA(path string) error {
	block := &pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write arm front ca certificate: %w", err)
	}
	return nil
}

// Set makes rate (0 to 1) of the later requests meet one of kinds (all of
// DefaultARMFaults when empty). Set(0) stops injecting.
func (f *ARMFaults) Set(rate float64, kinds ...ARMFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rate = rate
	if len(kinds) == 0 {
		kinds = DefaultARMFaults
	}
	f.kinds = kinds
}

// Counts returns how many faults of each kind were injected so far.
func (f *ARMFaults) Counts() map[ARMFault]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[ARMFault]int, len(f.counts))
	for k, v := range f.counts {
		out[k] = v
	}
	return out
}

// pick decides the fault for one request, or "".
func (f *ARMFaults) pick(r *http.Request) (ARMFault, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rate <= 0 || f.rnd.Float64() >= f.rate {
		return "", 0
	}
	put := r.Method == http.MethodPut
	var fits []ARMFault
	for _, k := range f.kinds {
		switch k {
		case FaultThrottle, FaultServerError, FaultLatency:
			fits = append(fits, k)
		default: // the others concern a write
			if put {
				fits = append(fits, k)
			}
		}
	}
	if len(fits) == 0 {
		return "", 0
	}
	k := fits[f.rnd.IntN(len(fits))]
	f.counts[k]++
	return k, time.Duration(300+f.rnd.IntN(2700)) * time.Millisecond
}

func (f *ARMFaults) serve(w http.ResponseWriter, r *http.Request) {
	kind, d := f.pick(r)
	inner := f.sim.Handler()
	switch kind {
	case "":
		inner.ServeHTTP(w, r)
	case FaultThrottle:
		w.Header().Set("Retry-After", "1")
		armError(w, http.StatusTooManyRequests, "SubscriptionRequestsThrottled", "injected throttling")
	case FaultConflict:
		armError(w, http.StatusConflict, "AnotherOperationInProgress", "injected conflict")
	case FaultPrecondition:
		armError(w, http.StatusPreconditionFailed, "PreconditionFailed", "injected etag mismatch")
	case FaultServerError:
		armError(w, http.StatusInternalServerError, "InternalServerError", "injected server error")
	case FaultErrorAfterWrite:
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		if rec.Code >= 300 {
			copyResponse(w, rec)
			return
		}
		armError(w, http.StatusInternalServerError, "InternalServerError", "injected server error after the write was applied")
	case FaultSlowLRO:
		f.sim.HangLRO(true)
		time.AfterFunc(d, func() { f.sim.HangLRO(false) })
		inner.ServeHTTP(w, r)
	case FaultLatency:
		time.Sleep(d / 2)
		inner.ServeHTTP(w, r)
	case FaultOperationFailed:
		// The next accepted PUT's operation ends Failed: with PUTs of several
		// NICs in flight that may be another node's, which is as good.
		f.sim.FailNextOperations(1, "")
		inner.ServeHTTP(w, r)
	}
}

func armError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// FormatFaultCounts prints counts sorted by kind.
func FormatFaultCounts(counts map[ARMFault]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[ARMFault(k)]))
	}
	return strings.Join(parts, " ")
}

func (tb *Testbed) armFrontCAPath() string { return filepath.Join(tb.cfg.WorkDir, "arm-front-ca.pem") }
