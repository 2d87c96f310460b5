package armsim_test

import (
	"context"
	"testing"
	"time"

	"github.com/nicpool/nicpool/internal/armsim"
)

func TestThrottling(t *testing.T) {
	tests := []struct {
		name     string
		throttle armsim.ThrottleOptions
		gets     int
		want429  bool
	}{
		{name: "within the bucket", throttle: armsim.ThrottleOptions{ReadBucket: 3, ReadRefillPerSec: 0.01}, gets: 3},
		{name: "bucket exhausted", throttle: armsim.ThrottleOptions{ReadBucket: 3, ReadRefillPerSec: 0.01}, gets: 4, want429: true},
		{name: "disabled", throttle: armsim.ThrottleOptions{Disabled: true, ReadBucket: 1, ReadRefillPerSec: 0.01}, gets: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, armsim.Options{Throttle: tc.throttle})
			ctx := ctxT(t)
			var err error
			for i := 0; i < tc.gets && err == nil; i++ {
				_, err = e.nics.Get(ctx, testRG, "vm-0-nic", nil)
			}
			if !tc.want429 {
				if err != nil {
					t.Fatalf("get: %v", err)
				}
				return
			}
			status, code := errCode(t, err)
			if status != 429 || code != armsim.CodeThrottled {
				t.Fatalf("got %d %s, want 429 %s", status, code, armsim.CodeThrottled)
			}
			re := mustResponseError(t, err)
			if ra := re.RawResponse.Header.Get("Retry-After"); ra != "100" {
				t.Errorf("Retry-After = %q, want 100 (one token at 0.01/s)", ra)
			}
		})
	}
}

func TestWritesHaveTheirOwnBucket(t *testing.T) {
	e := startEnv(t, armsim.Options{Throttle: armsim.ThrottleOptions{WriteBucket: 1, WriteRefillPerSec: 0.5}})
	ctx := ctxT(t)
	got, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if _, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", got.Interface, nil); err != nil {
		t.Fatalf("first put: %v", err)
	}
	_, err = e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-1-nic", got.Interface, nil)
	if status, code := errCode(t, err); status != 429 || code != armsim.CodeThrottled {
		t.Fatalf("second put got %d %s, want 429", status, code)
	}
	if _, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil); err != nil {
		t.Fatalf("read after write throttling: %v", err)
	}
}

func TestFailNext(t *testing.T) {
	tests := []struct {
		name       string
		op         armsim.Op
		n, status  int
		code       string
		wantErr    bool
		wantStatus map[int]int
	}{
		{name: "one 500 is retried by the pipeline", op: armsim.OpGetNIC, n: 1, status: 500,
			wantStatus: map[int]int{500: 1, 200: 1}},
		{name: "persistent 503 surfaces", op: armsim.OpGetNIC, n: 10, status: 503, wantErr: true,
			wantStatus: map[int]int{503: 4}},
		{name: "injected 404", op: armsim.OpGetNIC, n: 1, status: 404, code: armsim.CodeNotFound, wantErr: true,
			wantStatus: map[int]int{404: 1}},
		{name: "injected 429 is surfaced with its code", op: armsim.OpGetNIC, n: 1, status: 429, wantErr: true,
			wantStatus: map[int]int{429: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, armsim.Options{})
			ctx := ctxT(t)
			e.srv.FailNext(tc.op, tc.n, tc.status, tc.code)
			_, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("get err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				status, code := errCode(t, err)
				want := tc.code
				if want == "" && tc.status == 429 {
					want = armsim.CodeThrottled
				}
				if status != tc.status || (want != "" && code != want) {
					t.Errorf("got %d %s, want %d %s", status, code, tc.status, want)
				}
			}
			got := e.srv.Stats().Calls[tc.op]
			for st, n := range tc.wantStatus {
				if got[st] != n {
					t.Errorf("stats[%s][%d] = %d, want %d (all %v)", tc.op, st, got[st], n, got)
				}
			}
		})
	}
}

func TestFailNextPutAndPoll(t *testing.T) {
	e := startEnv(t, armsim.Options{})
	ctx := ctxT(t)
	got, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	e.srv.FailNext(armsim.OpPutNIC, 1, 409, armsim.CodeAnotherOperationInProgress)
	_, err = e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", got.Interface, nil)
	if status, code := errCode(t, err); status != 409 || code != armsim.CodeAnotherOperationInProgress {
		t.Fatalf("put got %d %s, want injected 409", status, code)
	}
	e.srv.FailNext(armsim.OpPollOperation, 1, 500, "")
	p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", got.Interface, nil)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, err := p.PollUntilDone(ctx, fastPoll); err != nil {
		t.Fatalf("poll with one injected 500: %v", err)
	}
	if n := e.srv.Stats().PutsByNIC[*got.ID]; n != 1 {
		t.Errorf("accepted puts = %d, want 1 (the injected failure is not a put)", n)
	}
}

func TestSetLatency(t *testing.T) {
	e := startEnv(t, armsim.Options{})
	e.srv.SetLatency(armsim.OpGetNIC, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil); err == nil {
		t.Fatalf("get with a minute of latency finished within 100ms")
	}
	e.srv.SetLatency(armsim.OpGetNIC, 0)
	if _, err := e.nics.Get(ctxT(t), testRG, "vm-0-nic", nil); err != nil {
		t.Fatalf("get after removing latency: %v", err)
	}
}

func TestWaitForChange(t *testing.T) {
	e := startEnv(t, armsim.Options{})
	ctx := ctxT(t)
	v0 := e.srv.Snapshot().Version
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := e.srv.WaitForChange(short, v0); err == nil {
		t.Fatalf("WaitForChange returned without a change")
	}
	got, err := e.nics.Get(ctx, testRG, "vm-2-nic", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	nic := got.Interface
	addSecondaries(&nic, "w", 1)
	done := make(chan uint64, 1)
	go func() {
		v, _ := e.srv.WaitForChange(ctx, v0)
		done <- v
	}()
	p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-2-nic", nic, nil)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if _, err := p.PollUntilDone(ctx, fastPoll); err != nil {
		t.Fatalf("poll: %v", err)
	}
	if v := <-done; v <= v0 {
		t.Fatalf("WaitForChange returned %d, want > %d", v, v0)
	}
	snap := e.srv.Snapshot()
	for _, n := range snap.NICs {
		if n.Name == "vm-2-nic" && (len(n.IPConfigs) != 2 || n.ProvisioningState != "Succeeded" || n.VMID == "") {
			t.Errorf("snapshot of vm-2-nic = %+v, want 2 succeeded configs on a VM", n)
		}
	}
}

func TestFailNextOperations(t *testing.T) {
	e := startEnv(t, armsim.Options{})
	ctx := ctxT(t)
	got, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	e.srv.FailNextOperations(1, "")
	p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", got.Interface, nil)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	_, err = p.PollUntilDone(ctx, fastPoll)
	if _, code := errCode(t, err); code != armsim.CodeInternalServerError {
		t.Fatalf("failed operation code = %s, want %s", code, armsim.CodeInternalServerError)
	}
	after, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if *after.Properties.ProvisioningState != "Failed" {
		t.Errorf("state after failed operation = %s, want Failed", *after.Properties.ProvisioningState)
	}
	for _, c := range after.Properties.IPConfigurations {
		if *c.Properties.ProvisioningState != "Failed" {
			t.Errorf("ip configuration %s after failed operation = %s, want Failed", *c.Name, *c.Properties.ProvisioningState)
		}
	}
	if n := e.srv.Stats().OperationsFailed; n != 1 {
		t.Errorf("Stats().OperationsFailed = %d, want 1", n)
	}
	p, err = e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", after.Interface, nil)
	if err != nil {
		t.Fatalf("put after failure: %v", err)
	}
	if _, err := p.PollUntilDone(ctx, fastPoll); err != nil {
		t.Fatalf("second operation should succeed: %v", err)
	}
}
