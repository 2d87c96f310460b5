package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	nicpoolv1 "github.com/nicpool/nicpool/api/v1alpha1"
	"github.com/nicpool/nicpool/internal/armsim"
	"github.com/nicpool/nicpool/internal/pool"
)

// TestFairShareRegardlessOfOrder has three nodes ask for 60 IPs of a VNet
// limit of 100, about 0.3 s apart, so the first is granted 60 before the
// others ask. Agents that give back free IPs above the fair share their pool's
// status shows (the agent's own policy function) bring the split to
// 34/33/33, and the VNet never holds more than 100.
func TestFairShareRegardlessOfOrder(t *testing.T) {
	s := startSim(t, armsim.GenerateTopology(testSub, testRG, "10.15.0.0/16", "10.15.0.0/24", 3))
	opts := testOptions()
	opts.PerVNetLimit = 100
	startOperator(t, s, opts, nil)
	names := []string{"fair-0", "fair-1", "fair-2"}
	for i, n := range names {
		createNode(t, n, providerID(i))
	}
	for _, n := range names {
		eventually(t, 30*time.Second, func() string {
			if lookPool(n).Status.VNetID == "" {
				return "pool " + n + " has no VNet yet"
			}
			return ""
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, n := range names {
		setRequest(t, n, 60, nil)
		wg.Go(func() { fakeAgent(ctx, t, n, 60) })
		time.Sleep(300 * time.Millisecond)
	}
	stable := 0
	eventually(t, 90*time.Second, func() string {
		var usable []int
		onNICs := 0
		for i, n := range names {
			owned, _ := nicOwned(s, nicID(i))
			onNICs += len(owned)
			p := lookPool(n)
			usable = append(usable, len(p.Status.IPs)-len(p.Spec.IPsNotInUse))
		}
		if onNICs > 100 {
			t.Fatalf("%d nicpool IPs on the VNet's NICs, above the limit of 100", onNICs)
		}
		split := slices.Clone(usable)
		slices.Sort(split)
		if !slices.Equal(split, []int{33, 33, 34}) || onNICs != 100 {
			stable = 0
			return fmt.Sprintf("usable IPs %v, %d on the NICs; want 34/33/33 and 100", usable, onNICs)
		}
		if stable++; stable < 5 {
			return "waiting for the split to stay put"
		}
		return ""
	})
}

// fakeAgent plays a node agent without pods: it asks for want IPs, gives back
// free IPs as the agent's release policy says (the cooldowns are too long to
// matter, so only IPs above the fair share go), and drops from ipsNotInUse
// the IPs the operator has removed.
func fakeAgent(ctx context.Context, t *testing.T, name string, want int) {
	cfg := pool.Config{WarmIPTarget: 0, MinIPTarget: 0, BatchSize: 1, MaxIPs: 250, ReleaseCooldown: time.Hour}
	for ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
		p := &nicpoolv1.NodeIPPool{}
		if err := env.Client.Get(ctx, clientKey(name), p); err != nil {
			continue
		}
		inStatus := map[nicpoolv1.IPv4Address]bool{}
		for _, ip := range p.Status.IPs {
			inStatus[ip.IP] = true
		}
		var notInUse []nicpoolv1.IPv4Address
		for _, ip := range p.Spec.IPsNotInUse {
			if inStatus[ip] {
				notInUse = append(notInUse, ip)
			}
		}
		var free []pool.IdleIP
		for _, ip := range p.Status.IPs {
			if !slices.Contains(notInUse, ip.IP) {
				free = append(free, pool.IdleIP{IP: string(ip.IP), IdleSince: time.Now()})
			}
		}
		in := pool.ReleaseInput{Now: time.Now(), Usable: len(free), Target: want, Free: free}
		if v := p.Status.FairShareIPCount; v != nil {
			share := int(*v)
			in.FairShare = &share
		}
		for _, ip := range pool.SelectRelease(cfg, in) {
			notInUse = append(notInUse, nicpoolv1.IPv4Address(ip))
		}
		if slices.Equal(notInUse, p.Spec.IPsNotInUse) && int(p.Spec.RequestedIPCount) == want {
			continue
		}
		p.Spec.RequestedIPCount, p.Spec.IPsNotInUse = int32(want), notInUse
		if err := env.Client.Update(ctx, p); err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "modified") {
			t.Errorf("agent of %s: update pool: %v", name, err)
			return
		}
	}
}
