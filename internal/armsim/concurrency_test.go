package armsim_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"

	"github.com/nicpool/nicpool/internal/armsim"
)

// withIfMatch returns ctx carrying an If-Match header for the azcore pipeline.
func withIfMatch(ctx context.Context, etag string) context.Context {
	h := http.Header{}
	h.Set("If-Match", etag)
	return policy.WithHTTPHeader(ctx, h)
}

func TestConcurrentPutsSameEtagOneWins(t *testing.T) {
	e := startEnv(t, armsim.Options{Throttle: armsim.ThrottleOptions{Disabled: true}})
	ctx := ctxT(t)
	got, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get nic: %v", err)
	}
	const writers = 8
	var wg sync.WaitGroup
	results := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			nic := got.Interface
			nic.Properties = &armnetwork.InterfacePropertiesFormat{IPConfigurations: append([]*armnetwork.InterfaceIPConfiguration(nil), got.Properties.IPConfigurations...)}
			addSecondaries(&nic, "w"+itoa(i), 1)
			p, err := e.nics.BeginCreateOrUpdate(withIfMatch(ctx, *got.Etag), testRG, "vm-0-nic", nic, nil)
			if err == nil {
				_, err = p.PollUntilDone(ctx, fastPoll)
			}
			results[i] = err
		}(i)
	}
	wg.Wait()
	wins := 0
	for _, err := range results {
		if err == nil {
			wins++
			continue
		}
		status, code := errCode(t, err)
		lostRace := (status == 412 && code == armsim.CodePreconditionFailed) || (status == 409 && code == armsim.CodeAnotherOperationInProgress)
		if !lostRace {
			t.Errorf("loser got %d %s, want 412 PreconditionFailed or 409 AnotherOperationInProgress", status, code)
		}
	}
	if wins != 1 {
		t.Fatalf("%d writers won, want exactly 1", wins)
	}
	final, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get nic: %v", err)
	}
	if n := len(final.Properties.IPConfigurations); n != 2 {
		t.Errorf("nic has %d configs, want 2 (primary + the winner's)", n)
	}
}

func TestPutInFlightConflicts(t *testing.T) {
	e := startEnv(t, armsim.Options{})
	ctx := ctxT(t)
	e.srv.HangLRO(true)
	got, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get nic: %v", err)
	}
	nic := got.Interface
	addSecondaries(&nic, "a", 1)
	p, err := e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", nic, nil)
	if err != nil {
		t.Fatalf("first put: %v", err)
	}
	_, err = e.nics.BeginCreateOrUpdate(ctx, testRG, "vm-0-nic", nic, nil)
	if status, code := errCode(t, err); status != 409 || code != armsim.CodeAnotherOperationInProgress {
		t.Fatalf("second put got %d %s, want 409 AnotherOperationInProgress", status, code)
	}
	resp, err := p.Poll(ctx)
	if resp != nil {
		_ = resp.Body.Close()
	}
	if err != nil || p.Done() {
		t.Fatalf("hung operation: done=%v err=%v, want in progress", p.Done(), err)
	}
	during, err := e.nics.Get(ctx, testRG, "vm-0-nic", nil)
	if err != nil {
		t.Fatalf("get during operation: %v", err)
	}
	if st := *during.Properties.ProvisioningState; st != armnetwork.ProvisioningStateUpdating {
		t.Errorf("state during operation = %s, want Updating", st)
	}
	if ip := during.Properties.IPConfigurations[1].Properties.PrivateIPAddress; ip == nil || *ip == "" {
		t.Errorf("new configuration has no address while Updating; Azure allocates at acceptance")
	}
	e.srv.HangLRO(false)
	res, err := p.PollUntilDone(ctx, fastPoll)
	if err != nil {
		t.Fatalf("poll after unhang: %v", err)
	}
	if *res.Properties.ProvisioningState != armnetwork.ProvisioningStateSucceeded {
		t.Errorf("state %s, want Succeeded", *res.Properties.ProvisioningState)
	}
}

func TestConcurrentUpdatesNoDuplicateAddress(t *testing.T) {
	const nodes, perNode = 10, 5 // 50 concurrent updates
	topo := armsim.GenerateTopology(testSub, testRG, "10.240.0.0/16", "10.240.0.0/22", nodes)
	e := startEnv(t, armsim.Options{Topology: topo, Throttle: armsim.ThrottleOptions{Disabled: true}})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, nodes*perNode)
	for n := 0; n < nodes; n++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			name := "vm-" + itoa(n)[2:] + "-nic"
			if n >= 10 {
				name = "vm-" + itoa(n)[1:] + "-nic"
			}
			for i := 0; i < perNode; i++ {
				errs <- addOne(ctx, e, name, "u"+itoa(i))
			}
		}(n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("update: %v", err)
		}
	}
	seen := map[string]string{}
	total := 0
	for _, n := range e.srv.Snapshot().NICs {
		for _, c := range n.IPConfigs {
			total++
			if other, dup := seen[c.IP]; dup {
				t.Errorf("address %s on %s and %s", c.IP, other, n.Name+"/"+c.Name)
			}
			seen[c.IP] = n.Name + "/" + c.Name
		}
	}
	if total != nodes*(perNode+1) {
		t.Errorf("%d configs in total, want %d", total, nodes*(perNode+1))
	}
}

// addOne does a read-modify-write PUT adding one secondary, retrying on 412/409 as an operator would.
func addOne(ctx context.Context, e *env, nicName, cfg string) error {
	for {
		got, err := e.nics.Get(ctx, testRG, nicName, nil)
		if err != nil {
			return err
		}
		nic := got.Interface
		addSecondaries(&nic, cfg, 1)
		p, err := e.nics.BeginCreateOrUpdate(withIfMatch(ctx, *got.Etag), testRG, nicName, nic, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, fastPoll)
			return err
		}
		if ctx.Err() != nil {
			return err
		}
	}
}
