package testbed

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/nicpool/nicpool/internal/armsim"
)

// LBProbeInterval is how often the fabric probes each load balancer backend. Azure's
// shortest interval is 5 s; the testbed probes faster so tests need not wait that long.
// One failed probe marks a backend down and one success up (Azure's probe threshold 1).
const LBProbeInterval = 300 * time.Millisecond

// setProbes replaces the probe targets.
func (f *fabric) setProbes(targets []probeTarget) {
	f.mu.Lock()
	f.probes = targets
	f.mu.Unlock()
}

// probeLoop probes every target each LBProbeInterval and re-enforces the policy when a
// backend's health changes, until ctx ends.
func (f *fabric) probeLoop(ctx context.Context, errs chan<- error) {
	t := time.NewTicker(LBProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		targets := append([]probeTarget{}, f.probes...)
		f.mu.Unlock()
		changed := false
		for _, tg := range targets {
			up := f.probe(ctx, tg)
			f.mu.Lock()
			if old, seen := f.health[tg.key()]; !seen || old != up {
				f.health[tg.key()] = up
				changed = true
			}
			f.mu.Unlock()
		}
		if !changed {
			continue
		}
		if err := f.enforce(); err != nil {
			select {
			case errs <- err:
			default:
			}
		}
	}
}

// probe connects from AzureLBProbeIP in the fabric namespace: Tcp succeeds on connect,
// Http (and Https, probed as plain HTTP) on a 200 answer to a GET of the path.
func (f *fabric) probe(ctx context.Context, t probeTarget) bool {
	up := false
	_ = f.ns.Do(func(ns.NetNS) error {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(AzureLBProbeIP)}}
		c, err := d.DialContext(ctx, "tcp4", fmt.Sprintf("%s:%d", t.Backend, t.Port))
		if err != nil {
			return nil
		}
		defer func() { _ = c.Close() }()
		if t.Protocol == "Tcp" {
			up = true
			return nil
		}
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: Load Balancer Agent\r\n\r\n", t.Path, t.Backend); err != nil {
			return nil
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		up = err == nil && len(strings.Fields(line)) >= 2 && strings.Fields(line)[1] == "200"
		return nil
	})
	return up
}

// markEnforced records that armsim's version v is enforced and wakes waiters.
func (f *fabric) markEnforced(v uint64) {
	f.mu.Lock()
	if v > f.enforced {
		f.enforced = v
	}
	f.enforcedHealth = make(map[string]bool, len(f.health))
	for k, h := range f.health {
		f.enforcedHealth[k] = h
	}
	close(f.enforcedCh)
	f.enforcedCh = make(chan struct{})
	f.mu.Unlock()
}

// waitEnforced blocks until cond (called with f.mu held) holds or ctx ends.
func (f *fabric) waitEnforced(ctx context.Context, what string, cond func() bool) error {
	for {
		f.mu.Lock()
		ok, ch := cond(), f.enforcedCh
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for the fabric to enforce %s: %w", what, ctx.Err())
		}
	}
}

// WaitFabric waits until the fabric enforces armsim's current state (routes, NSGs,
// route tables, load balancers, public IPs).
func (tb *Testbed) WaitFabric(ctx context.Context) error {
	v := tb.Sim.Snapshot().Version
	return tb.fabric.waitEnforced(ctx, fmt.Sprintf("armsim version %d", v), func() bool { return tb.fabric.enforced >= v })
}

// WaitLBBackend waits until the fabric's rules send (healthy) or no longer send new
// flows of load balancer lb (its name) to backend, according to its health probes.
func (tb *Testbed) WaitLBBackend(ctx context.Context, lb, backend string, healthy bool) error {
	what := fmt.Sprintf("backend %s of load balancer %s healthy=%v", backend, lb, healthy)
	return tb.fabric.waitEnforced(ctx, what, func() bool {
		found := false
		for k, h := range tb.fabric.enforcedHealth {
			parts := strings.Split(k, "|")
			if len(parts) == 3 && strings.HasSuffix(parts[0], "/loadbalancers/"+lower(lb)) && parts[2] == backend {
				if h != healthy {
					return false
				}
				found = true
			}
		}
		return found
	})
}

// setSnapshot records the snapshot the next enforce works from.
func (f *fabric) setSnapshot(s armsim.Snapshot) {
	f.mu.Lock()
	f.lastSnap = &s
	f.mu.Unlock()
}
